"""Fingerprints of weight files: the one ``weight_hash`` rule, shared by loading and streaming readers.

A model directory's hash covers the files its weights are read from: its ``*.safetensors`` files when
it has any (transformers and `SafetensorsWeights` read those), else its ``*.bin`` files, else its
``*.gguf`` files. So a directory gets the same hash whether it is streamed or loaded whole. A tokenizer's
fingerprint covers its vocabulary (`tokenizer_fingerprint`).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

WEIGHT_SUFFIXES = (".safetensors", ".bin", ".gguf")  # in order of preference


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


def weight_files(directory: Path) -> list[Path]:
    """The files a model directory's weights are read from (module doc); empty when it has none."""
    for suffix in WEIGHT_SUFFIXES:
        files = sorted(p for p in directory.iterdir() if p.suffix == suffix and p.is_file())
        if files:
            return files
    return []


def weight_hash(directory: str | Path) -> str:
    """The ``weight_hash`` of a local model directory (module doc)."""
    return file_fingerprint(weight_files(Path(directory)))


def tokenizer_fingerprint(tokenizer: Any) -> str | None:
    """A fingerprint of a tokenizer's vocabulary (token → id), so a run can tell another tokenizer's; None
    for an object without a vocabulary."""
    get_vocab = getattr(tokenizer, "get_vocab", None)
    if get_vocab is None:
        return None
    vocab = sorted(get_vocab().items())
    return hashlib.sha256(json.dumps(vocab, ensure_ascii=False).encode()).hexdigest()[:16]
