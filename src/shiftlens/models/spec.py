"""`ModelSpec`: the one place a model and its loading options are named (CLI, library and `compare`).

Importing it needs no torch (the loaders are imported when a model loads), so the command line builds its
parser and checks a model's name (`check_name`) before torch is imported.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from shiftlens.config import check_choices, setting
from shiftlens.models.checks import check_adapter
from shiftlens.models.device import auto_device, check_device
from shiftlens.models.files import check_model

if TYPE_CHECKING:
    from shiftlens.models.load import LoadedModel

DTYPE_NAMES = ("float32", "bfloat16", "float16")  # the torch dtypes a model loads in (`shiftlens.models.DTYPES`)


def check_name(name: str, gguf_file: str | None = None, adapter: str | None = None) -> None:
    """A model's name, GGUF file and adapter checked without loading weights: a misspelled built-in name, a
    missing or damaged local model, a non-causal LM, an unreachable hub (only a local model's configuration
    imports transformers, and so torch)."""
    check_model(name, gguf_file)
    if adapter is not None:
        check_adapter(adapter)


@dataclass(frozen=True)
class ModelSpec:
    """A model to load: hub id, local directory, .gguf file or built-in name, and how to load it."""

    name: str
    gguf_file: str | None = setting(None, "GGUF file name inside the model's directory")
    adapter: str | None = setting(None, "PEFT/LoRA adapter merged into the model")
    dtype: str = setting("float32", "weights' dtype", choices=DTYPE_NAMES)
    device: str = setting(
        "auto", "cpu, cuda[:N], or auto: cuda when present (accelerate's device map over several GPUs), else cpu"
    )
    trust_remote_code: bool = setting(False, "run code from the model's repository")

    def __post_init__(self) -> None:
        check_choices(self)
        if self.device == "auto":  # resolved once (torch asked), so the manifest records where the model ran
            object.__setattr__(self, "device", auto_device())

    def check(self) -> None:
        """Fail fast, before any run directory exists, on what can be told without loading weights: the
        device, a misspelled built-in name, a missing or damaged local model, a non-causal LM, an unreachable hub,
        an adapter that is missing or does not fit the model."""
        check_device(self.device)
        check_name(self.name, self.gguf_file, self.adapter)
        if self.adapter is not None:  # its modules against the base's, from the configuration (imports torch)
            from shiftlens.models.load import check_adapter_base

            check_adapter_base(
                self.name, self.adapter, gguf_file=self.gguf_file, trust_remote_code=self.trust_remote_code
            )

    def load(self) -> LoadedModel:
        """Load the model (`shiftlens.models.load_model`)."""
        from shiftlens.models.load import load_model

        return load_model(
            self.name,
            gguf_file=self.gguf_file,
            adapter=self.adapter,
            dtype=self.dtype,
            device=self.device,
            trust_remote_code=self.trust_remote_code,
        )

    def tokenizer(self) -> Any:
        """Only this model's tokenizer (cheap: no weights), e.g. to check it against a run's."""
        from shiftlens.models.load import load_tokenizer

        return load_tokenizer(self.name, gguf_file=self.gguf_file, trust_remote_code=self.trust_remote_code)

    def record(self) -> dict[str, Any]:
        """The JSON-safe spec for a manifest."""
        return {k: getattr(self, k) for k in self.__dataclass_fields__}
