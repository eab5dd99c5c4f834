"""Load a causal LM and its tokenizer from a hub id, a local directory, a GGUF file or a built-in name."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from shiftlens.models.checks import check_adapter, check_adapter_fits, check_causal_lm
from shiftlens.models.device import check_device
from shiftlens.models.errors import ModelLoadError
from shiftlens.models.files import local_source
from shiftlens.models.fingerprint import tokenizer_fingerprint, weight_hash
from shiftlens.models.spec import DTYPE_NAMES

DTYPES: dict[str, torch.dtype] = {name: getattr(torch, name) for name in DTYPE_NAMES}


@dataclass
class LoadedModel:
    """A model ready for analysis, with what the run manifest records about it."""

    model: Any
    tokenizer: Any
    name: str
    weight_hash: str
    dtype: str
    device: str
    weights_dir: Path | None = None  # a local safetensors directory, for per-layer streaming
    extra: dict[str, Any] = field(default_factory=dict)

    def manifest(self) -> dict[str, Any]:
        """The JSON-safe identity of this model for run manifests."""
        return {
            "name": self.name,
            "weight_hash": self.weight_hash,
            "dtype": self.dtype,
            "device": self.device,
            "model_type": self.model.config.model_type,
            "tokenizer_sha256": tokenizer_fingerprint(self.tokenizer),
            **self.extra,
        }


def _load_error(name_or_path: str, exc: Exception, trust_remote_code: bool, what: str = "") -> ModelLoadError:
    """The clear error for a failed transformers load; remote code without the flag is named as such."""
    if "trust_remote_code" in str(exc) and not trust_remote_code:
        return ModelLoadError(
            f"{name_or_path} needs code from its repository; rerun with --trust-remote-code if you trust it"
        )
    return ModelLoadError(f"could not load {what}{name_or_path}: {exc}")


def load_tokenizer(name_or_path: str, *, gguf_file: str | None = None, trust_remote_code: bool = False) -> Any:
    """Only the tokenizer of a model (cheap: no weights), e.g. to check two models share one."""
    from transformers import AutoTokenizer

    source, _ = local_source(name_or_path, gguf_file)
    try:
        return AutoTokenizer.from_pretrained(source, trust_remote_code=trust_remote_code)
    except (OSError, ValueError) as exc:
        raise _load_error(name_or_path, exc, trust_remote_code, "the tokenizer of ") from exc


def load_config(directory: str | Path, *, trust_remote_code: bool = False) -> Any:
    """Only the configuration of a local model directory (no weights), for streaming readers."""
    from transformers import AutoConfig

    try:
        return AutoConfig.from_pretrained(directory, trust_remote_code=trust_remote_code)
    except (OSError, ValueError) as exc:
        raise _load_error(str(directory), exc, trust_remote_code, "the configuration of ") from exc


def check_adapter_base(
    name_or_path: str, adapter: str, *, gguf_file: str | None = None, trust_remote_code: bool = False
) -> None:
    """Whether ``adapter`` fits the model, told from the model's configuration alone (its modules built on the
    meta device, no weights read), so a mismatch fails before any run starts."""
    from transformers import AutoModelForCausalLM

    check_adapter(adapter)
    source, _ = local_source(name_or_path, gguf_file)
    config = load_config(source, trust_remote_code=trust_remote_code) if Path(source).is_dir() else None
    if config is None:
        return  # a hub model: checked when it loads
    with torch.device("meta"):
        skeleton = AutoModelForCausalLM.from_config(config, trust_remote_code=trust_remote_code)
    check_adapter_fits(adapter, skeleton, name_or_path)


def _merge_adapter(model: Any, adapter: str, directory: Path, model_name: str) -> Any:
    """The base with the PEFT adapter merged in, after checking that the adapter fits it."""
    try:
        from peft import PeftModel
    except ImportError as exc:
        raise ModelLoadError("--adapter needs: pip install 'shiftlens[peft]'") from exc
    check_adapter_fits(adapter, model, model_name)
    try:
        return PeftModel.from_pretrained(model, str(directory)).merge_and_unload()
    except (OSError, ValueError, RuntimeError, KeyError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ModelLoadError(f"adapter {adapter!r} could not be applied to {model_name}: {first}") from exc


def load_model(
    name_or_path: str,
    *,
    gguf_file: str | None = None,
    adapter: str | None = None,
    dtype: str = "float32",
    device: str = "cpu",
    trust_remote_code: bool = False,
) -> LoadedModel:
    """Load a model for analysis: eval mode, parameters frozen, on the asked device and dtype.

    ``adapter`` is a PEFT/LoRA adapter (a directory or a built-in adapter name, e.g. ``smollm2-lora-demo``)
    merged into the base weights, so the result is the tuned model in the base's architecture; one that does
    not fit the base is refused by name (`check_adapter_fits`). ``device="auto"`` shards the model with
    accelerate's device map.
    """
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    if dtype not in DTYPES:
        raise ModelLoadError(f"unknown dtype {dtype!r}; choose one of {', '.join(DTYPES)}")
    check_device(device)
    adapter_dir = None if adapter is None else check_adapter(adapter)
    source, gguf = local_source(name_or_path, gguf_file)
    kwargs: dict[str, Any] = {"dtype": DTYPES[dtype], "trust_remote_code": trust_remote_code}
    if device == "auto":
        kwargs["device_map"] = "auto"
    try:
        config = AutoConfig.from_pretrained(source, trust_remote_code=trust_remote_code)
        check_causal_lm(config.to_dict(), name_or_path)
        tokenizer = AutoTokenizer.from_pretrained(source, trust_remote_code=trust_remote_code)
        model = AutoModelForCausalLM.from_pretrained(source, config=config, **kwargs)
    except (OSError, ValueError) as exc:
        raise _load_error(name_or_path, exc, trust_remote_code) from exc
    if adapter_dir is not None:
        model = _merge_adapter(model, adapter, adapter_dir, name_or_path)
    if device not in ("cpu", "auto"):
        model = model.to(device)
    model.eval()
    model.requires_grad_(False)
    local = Path(source)
    weights_dir = local if local.is_dir() and any(local.glob("*.safetensors")) else None
    identity = weight_hash(local) if local.is_dir() else str(getattr(model.config, "_commit_hash", None) or "unknown")
    extra = {"adapter": adapter} if adapter else {}
    if gguf:
        extra["gguf_file"] = gguf
    return LoadedModel(model, tokenizer, name_or_path, identity, dtype, device, weights_dir, extra)
