"""The one manifest schema every run shares, and how readers take a format 1 (shiftlens 0.1) manifest too.

Format 2: ``kind``, ``format_version``, ``params`` (the identity: the settings that fix the stored units,
plus the checked part of the model, ``params["model"]``, and input hashes; a resume must match them),
``summary`` (settings that only change speed or derived tables: recorded, never checked), ``model`` (the
model's record: name, weight_hash, model_type, dtype, device, adapter, ...), ``vocabulary`` (its file,
always ``vocabulary.json``, and counts), ``counts``, ``failed`` and ``complete``. Format 1 spelled the
model ``model_info`` in heads and FFN runs and kept a heads run's words in ``words.json``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from shiftlens.errors import ShiftlensError
from shiftlens.runs.errors import WrongRunKind
from shiftlens.storage import RunDirectory, atomic_write_json, read_manifest

VOCABULARY_FILE = "vocabulary.json"
_FORMAT_1_VOCABULARY = "words.json"  # heads runs of format 1


def check_kind(path: str | Path, wanted: str) -> dict[str, Any]:
    """The manifest of the run at ``path``, refused with `WrongRunKind` unless it is a ``wanted`` run."""
    manifest = read_manifest(path)
    if manifest.get("kind") != wanted:
        raise WrongRunKind(path, manifest.get("kind"), wanted)
    return manifest


def model_record(manifest: dict[str, Any]) -> dict[str, Any]:
    """The model a run explains (name, weight_hash, ...): ``model``, or format 1 heads/FFN runs' ``model_info``."""
    record = manifest.get("model") if isinstance(manifest.get("model"), dict) else None
    return record or manifest.get("model_info") or {}


def model_key(record: dict[str, Any]) -> dict[str, Any]:
    """The part of a model record that fixes a result (checked on resume): weights, dtype, adapter."""
    return {"weight_hash": record.get("weight_hash"), "dtype": record.get("dtype"), "adapter": record.get("adapter")}


def store_vocabulary(run: RunDirectory, words: list[str], source: str | Path) -> None:
    """Write the run's words (score-index order) once; a resumed run must give the same words."""
    path = run.path / VOCABULARY_FILE
    if not path.exists():
        atomic_write_json(path, words)
    elif json.loads(path.read_text(encoding="utf-8")) != words:
        raise ShiftlensError(f"{path} lists other words than {source} gives now; use a new --out")


def read_vocabulary(path: str | Path) -> list[str]:
    """The words of a run directory (``vocabulary.json``, or a format 1 heads run's ``words.json``)."""
    for name in (VOCABULARY_FILE, _FORMAT_1_VOCABULARY):
        file = Path(path) / name
        if file.exists():
            return json.loads(file.read_text(encoding="utf-8"))
    raise ShiftlensError(f"{path} has no {VOCABULARY_FILE}: is it a finished run?")
