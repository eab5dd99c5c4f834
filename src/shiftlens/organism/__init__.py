"""The model organism: a tiny base / instruction-tuned Llama pair built from WordNet, shipped as package data.

`organism-base` and `organism-tuned` are built-in model names (see `shiftlens.models.BUILTIN_MODELS`);
`load_prompts` gives the held-out instruction prompts of the demo. Rebuild with scripts/build_organism.py.
"""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path
from typing import Any

BUILTIN_NAMES = {"organism-base": "base", "organism-tuned": "tuned"}


def data_dir() -> Path:
    """The packaged organism directory, ``organism/assets/`` (base/, tuned/, prompts.jsonl, metrics.json)."""
    return Path(str(resources.files("shiftlens.organism") / "assets"))


def model_dir(variant: str) -> Path:
    """The Hugging Face model directory of "base" or "tuned"."""
    if variant not in BUILTIN_NAMES.values():
        raise ValueError(f"unknown organism variant {variant!r}; choose base or tuned")
    return data_dir() / variant


def prompts_path() -> Path:
    """The held-out demo prompts (JSONL: id, prompt, instruction_spans, group, rating, response, ...)."""
    return data_dir() / "prompts.jsonl"


def vocab_path() -> Path:
    """The organism's word list (``word<TAB>frequency``, from its corpus) for the heads and FFN methods."""
    return data_dir() / "vocab.tsv"


def load_prompts() -> list[dict[str, Any]]:
    """The held-out demo prompt records, in file order."""
    with prompts_path().open(encoding="utf-8") as handle:
        return [json.loads(line) for line in handle if line.strip()]
