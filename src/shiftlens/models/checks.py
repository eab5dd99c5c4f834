"""Fail-fast checks of a model name before anything loads: built-in names, local files, the hub, causal LMs.

A name close to a built-in one gets "did you mean ..." without any hub call; a path that does not exist,
a damaged safetensors file, a file that is not GGUF and a model that is not a causal LM (e.g. a BERT
directory) are one-line errors; a hub id is only tried once the hub answers a single 2-second probe.
"""

from __future__ import annotations

import difflib
import functools
import json
import re
import socket
import urllib.request
from collections.abc import Collection
from pathlib import Path
from urllib.parse import urlparse

from shiftlens.errors import warn
from shiftlens.models.errors import ModelLoadError

GGUF_MAGIC = b"GGUF"
PROBE_TIMEOUT = 2.0  # seconds for the one connection attempt to the hub
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*(/[\w.-]+)?$")


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
