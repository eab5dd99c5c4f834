"""The model organism v2: a tiny GPT-2 base and its instruction-tuned versions with planted shifts, shipped as
package data (docs/organism.md).

`organism-base`, `organism-tuned` (tuning seed 0), `organism-tuned-seed1`, `organism-tuned-seed2` and
`organism-continued` (the base trained on more plain text, no instructions) are built-in model names (see
`shiftlens.models.BUILTIN_MODELS`); `load_prompts` gives the held-out prompt records, ground_truth.json what
tuning planted (read by `shiftlens validate`). Rebuild with scripts/build_organism.py.
"""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path
from typing import Any

from shiftlens.models.files import ORGANISM

QUESTION_WORDS = frozenset({"which", "what"})  # instruction phrasings' first words that are no verb
BUILTIN_NAMES = ORGANISM  # built-in model name -> its directory under assets/ (declared with the other built-ins)


def data_dir() -> Path:
    """The packaged organism directory, ``organism/assets/`` (the model directories, prompts.jsonl, vocab.tsv,
    ground_truth.json, metrics.json)."""
    return Path(str(resources.files("shiftlens.organism") / "assets"))


def model_dir(variant: str) -> Path:
    """The Hugging Face model directory of a variant ("base", "tuned", "tuned-seed1", "tuned-seed2", "continued")."""
    if variant not in BUILTIN_NAMES.values():
        raise ValueError(f"unknown organism variant {variant!r}; choose {', '.join(BUILTIN_NAMES.values())}")
    return data_dir() / variant


def prompts_path() -> Path:
    """The held-out prompt records (JSONL: id, task, prompt, instruction_spans, control_spans, position, response,
    rating, ...): each prompt twice, a ``-followed`` record (rating 2) and an ``-unfollowed`` one (rating 0)."""
    return data_dir() / "prompts.jsonl"


def vocab_path() -> Path:
    """The organism's word list (``word<TAB>frequency``, from its corpus) for the heads and FFN methods."""
    return data_dir() / "vocab.tsv"


def load_prompts() -> list[dict[str, Any]]:
    """The held-out prompt records, in file order."""
    with prompts_path().open(encoding="utf-8") as handle:
        return [json.loads(line) for line in handle if line.strip()]


def instruction_verbs() -> list[str]:
    """The verbs the organism's instructions are phrased with (its instruction words for heads' Table 3): every
    choose verb (`planted.CATEGORIES`) and the first word of each instruction phrasing that is a verb, not a
    question word ("Choose one to eat." → choose; "What is this word in Zorbish?" → none)."""
    from shiftlens.organism.planted import CATEGORIES, CHOOSE_INSTRUCTIONS, TRANSLATE_INSTRUCTIONS

    first = {phrasing.split()[0].lower() for phrasing in (*CHOOSE_INSTRUCTIONS, *TRANSLATE_INSTRUCTIONS)}
    return sorted({*CATEGORIES, *(w for w in first if w.isalpha())} - QUESTION_WORDS)


def followed_records(per_cell: int) -> list[dict[str, Any]]:
    """A balanced subset of the held-out prompts, one record each (its ``-followed`` one): the first ``per_cell``
    prompts of every task and instruction position (first, last) in file order, taken in turn from each, so that
    any first N of them are balanced too."""
    from shiftlens.organism.planted import take_turns

    cells: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for record in load_prompts():
        if record["rating"] > 0:
            cells.setdefault((record["task"], record["position"]), []).append(record)
    return take_turns([records[:per_cell] for _, records in sorted(cells.items())])
