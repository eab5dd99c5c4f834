"""Fail-fast checks of a model name before anything loads: built-in names, local files, the hub, causal LMs.

A name close to a built-in one gets "did you mean ..." without any hub call; a path that does not exist,
a damaged safetensors file, a file that is not GGUF and a model that is not a causal LM (e.g. a BERT
directory) are one-line errors; a hub id is only tried once the hub answers a single 2-second probe.
PEFT adapters are checked twice: their files before anything loads (`check_adapter`), then against the
loaded base (`check_adapter_fits`: the modules they adapt exist and have the adapter's input/output sizes).
"""

from __future__ import annotations

import difflib
import functools
import json
import re
import socket
import urllib.request
from collections.abc import Collection
from importlib import resources
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from shiftlens.errors import warn
from shiftlens.models.errors import ModelLoadError

GGUF_MAGIC = b"GGUF"
PROBE_TIMEOUT = 2.0  # seconds for the one connection attempt to the hub
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*(/[\w.-]+)?$")
ADAPTER_CONFIG = "adapter_config.json"
ADAPTER_WEIGHTS = ("adapter_model.safetensors", "adapter_model.bin")
# Built-in adapter names -> their directory inside the package (package data of shiftlens.models)
BUILTIN_ADAPTERS: dict[str, tuple[str, ...]] = {
    "smollm2-lora-demo": ("assets", "smollm2-lora-demo", "adapter"),  # of `smollm2`: scripts/build_smol_adapter.py
}


def check_source(name: str, builtins: Collection[str]) -> None:
    """Refuse a model name that cannot work, before any weights load and before any slow hub retries.

    ``builtins`` are the built-in names (matched here, never sent to the hub); an existing path is
    checked on disk (`check_local`); anything else must be a hub id the hub (or its cache) can serve.
    """
    if name in builtins:
        return
    path = Path(name).expanduser()
    if path.exists():
        check_local(path)
        return
    close = difflib.get_close_matches(name, builtins, n=1, cutoff=0.6)
    if close:
        raise ModelLoadError(f"unknown model {name!r}; did you mean {close[0]}? (built-in: {', '.join(builtins)})")
    if name.endswith(".gguf") or name.startswith(("/", ".", "~")) or not _HUB_ID.match(name):
        raise ModelLoadError(f"model {name!r}: no such file or directory (and not a hub id like org/name)")
    check_hub(name, builtins)


def check_local(path: Path, gguf_file: str | None = None) -> None:
    """A local model: a GGUF file must start with the GGUF magic; a directory's safetensors and config must be sound."""
    if gguf_file is not None:
        path = path / gguf_file
        if not path.is_file():
            raise ModelLoadError(f"no GGUF file {gguf_file!r} in {path.parent}")
    if path.is_file():
        if path.suffix == ".gguf" or gguf_file is not None:
            with path.open("rb") as handle:
                if handle.read(4) != GGUF_MAGIC:
                    raise ModelLoadError(f"{path} is not a GGUF file (it does not start with the GGUF magic bytes)")
        return
    for file in sorted(path.glob("*.safetensors")):
        check_safetensors(file)
    config = path / "config.json"
    if config.is_file():
        check_causal_lm(_read_config(config), str(path))


def check_safetensors(file: Path) -> None:
    """A safetensors file whose header or data is damaged or truncated is refused by name."""
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(str(file), framework="pt"):
            pass
    except (SafetensorError, OSError) as exc:
        raise ModelLoadError(f"{file} is damaged or truncated ({exc}); download or save the model again") from exc


def _read_config(path: Path) -> dict:
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise ModelLoadError(f"{path} is not a readable JSON model configuration ({exc})") from exc
    if not isinstance(config, dict):
        raise ModelLoadError(f"{path} is not a model configuration (a JSON object)")
    return config


def check_causal_lm(config: dict, name: str) -> None:
    """Refuse a model that is not a decoder-only causal LM (an encoder such as BERT, or an encoder-decoder)."""
    from transformers.models.auto.modeling_auto import (
        MODEL_FOR_CAUSAL_LM_MAPPING_NAMES,
        MODEL_FOR_MASKED_LM_MAPPING_NAMES,
    )

    model_type = config.get("model_type")
    if model_type is None or "auto_map" in config:  # remote code: its own classes say what it is
        return
    architecture = ", ".join(config.get("architectures") or []) or model_type
    encoder = model_type in MODEL_FOR_MASKED_LM_MAPPING_NAMES and not config.get("is_decoder")
    seq2seq = bool(config.get("is_encoder_decoder"))
    if encoder or seq2seq or model_type not in MODEL_FOR_CAUSAL_LM_MAPPING_NAMES:
        kind = "an encoder" if encoder else "an encoder-decoder" if seq2seq else "not a causal LM"
        raise ModelLoadError(
            f"{name} is a {architecture} (model type {model_type}: {kind}); shiftlens explains decoder-only "
            "causal language models (Llama, Mistral, Qwen2, Gemma, Phi, GPT-NeoX, GPT-2, ...)"
        )


def check_hub(repo_id: str, builtins: Collection[str]) -> None:
    """A hub id is tried only if the hub answers one short probe, or the model is in the local hub cache."""
    from huggingface_hub import constants, try_to_load_from_cache

    cached = isinstance(try_to_load_from_cache(repo_id, "config.json"), str)
    if cached and constants.HF_HUB_OFFLINE:
        return
    if not constants.HF_HUB_OFFLINE and hub_reachable(constants.ENDPOINT):
        return
    if cached:
        warn(f"cannot reach the hub ({constants.ENDPOINT}); loading {repo_id} from the local hub cache")
        constants.HF_HUB_OFFLINE = True  # no retries against a hub that is not there
        return
    why = f"cannot reach the hub {constants.ENDPOINT} (no network?)"
    if constants.HF_HUB_OFFLINE:
        why = "HF_HUB_OFFLINE is set"
    instead = f"a local path or a built-in name: {', '.join(builtins)}" if builtins else "a local path"
    raise ModelLoadError(f"{why} to fetch {repo_id}, and it is not in the hub cache; give {instead}")


@functools.cache
def hub_reachable(endpoint: str) -> bool:
    """Whether one TCP connection to the hub's host (or the proxy in the environment) opens within
    `PROBE_TIMEOUT` (asked once per process)."""
    url = urlparse(endpoint)
    proxy = urllib.request.getproxies().get(url.scheme)
    if proxy and not urllib.request.proxy_bypass(url.hostname or ""):
        url = urlparse(proxy if "://" in proxy else f"http://{proxy}")
    port = url.port or (443 if url.scheme == "https" else 80)
    try:
        socket.create_connection((url.hostname or "", port), timeout=PROBE_TIMEOUT).close()
    except OSError:
        return False
    return True


def resolve_adapter(name: str) -> Path:
    """The directory of an adapter: a built-in name's package directory, else the path as given."""
    if name in BUILTIN_ADAPTERS:
        return Path(str(resources.files("shiftlens.models"))).joinpath(*BUILTIN_ADAPTERS[name])
    return Path(name).expanduser()


def check_adapter(name: str) -> Path:
    """A PEFT adapter's directory, checked before anything loads: it exists and holds a readable
    ``adapter_config.json`` and the adapter's weights. Returns the directory."""
    directory = resolve_adapter(name)
    if not directory.exists():
        close = difflib.get_close_matches(name, BUILTIN_ADAPTERS, n=1, cutoff=0.6)
        hint = f"did you mean {close[0]}? " if close else ""
        raise ModelLoadError(
            f"adapter {name!r}: no such directory; {hint}give a PEFT adapter directory or a built-in adapter "
            f"({', '.join(BUILTIN_ADAPTERS)})"
        )
    if not directory.is_dir():
        raise ModelLoadError(f"adapter {name!r} is a file; give the PEFT adapter's directory (with {ADAPTER_CONFIG})")
    if not (directory / ADAPTER_CONFIG).is_file():
        raise ModelLoadError(f"adapter {name!r} has no {ADAPTER_CONFIG}: not a PEFT adapter directory")
    config = _read_config(directory / ADAPTER_CONFIG)
    if "peft_type" not in config:
        raise ModelLoadError(f"{directory / ADAPTER_CONFIG} names no peft_type: not a PEFT adapter configuration")
    weights = [directory / f for f in ADAPTER_WEIGHTS if (directory / f).is_file()]
    if not weights:
        raise ModelLoadError(f"adapter {name!r} has no weights ({' or '.join(ADAPTER_WEIGHTS)})")
    if weights[0].suffix == ".safetensors":
        check_safetensors(weights[0])
    return directory


def _adapted_modules(directory: Path) -> dict[str, dict[str, tuple[int, ...]]]:
    """Per module path of the base model, the shapes of the adapter's tensors for it (``lora_A``, ``lora_B``, ...),
    read from the safetensors header only."""
    from safetensors import safe_open

    modules: dict[str, dict[str, tuple[int, ...]]] = {}
    with safe_open(str(directory / ADAPTER_WEIGHTS[0]), framework="pt") as handle:
        for key in handle.keys():
            parts = key.removeprefix("base_model.model.").split(".")
            kinds = [i for i, part in enumerate(parts) if part.startswith("lora_")]
            if kinds:
                i = kinds[0]
                modules.setdefault(".".join(parts[:i]), {})[parts[i]] = tuple(handle.get_slice(key).get_shape())
    return modules


def _linear_sizes(module: Any) -> tuple[int, int] | None:
    """(input size, output size) of a linear layer (torch Linear or GPT-2's Conv1D), None for another module."""
    if hasattr(module, "in_features") and hasattr(module, "out_features"):
        return int(module.in_features), int(module.out_features)
    weight = getattr(module, "weight", None)
    if type(module).__name__ == "Conv1D" and weight is not None:
        return int(weight.shape[0]), int(weight.shape[1])
    return None


def check_adapter_fits(name: str, model: Any, model_name: str) -> None:
    """The adapter adapts modules the loaded base has, of the sizes its tensors expect; else one line naming
    the mismatch (another architecture's module names, another hidden size)."""
    directory = resolve_adapter(name)
    config = _read_config(directory / ADAPTER_CONFIG)
    made_for = (config.get("auto_mapping") or {}).get("base_model_class") or config.get("base_model_name_or_path")
    ours = f"{model_name} ({type(model).__name__}, hidden size {getattr(model.config, 'hidden_size', '?')})"
    built = f" (built for {made_for})" if made_for else ""
    if not (directory / ADAPTER_WEIGHTS[0]).is_file():
        return  # a .bin adapter: PEFT itself reports what does not fit
    adapted = _adapted_modules(directory)
    names = dict(model.named_modules())
    missing = sorted(path for path in adapted if path not in names)
    if missing:
        kinds = sorted({path.rsplit(".", 1)[-1] for path in missing})
        raise ModelLoadError(
            f"adapter {name!r}{built} adapts {len(missing)} modules that {ours} does not have "
            f"(e.g. {missing[0]}; module names {', '.join(kinds)}): it was tuned on another architecture"
        )
    for path, shapes in sorted(adapted.items()):
        sizes = _linear_sizes(names[path])
        a, b = shapes.get("lora_A"), shapes.get("lora_B")
        if sizes is None or a is None or b is None or len(a) != 2 or len(b) != 2:
            continue
        if (a[1], b[0]) != sizes:
            raise ModelLoadError(
                f"adapter {name!r}{built} does not fit {ours}: its {path} maps {a[1]} → {b[0]} features, "
                f"the model's maps {sizes[0]} → {sizes[1]}"
            )
