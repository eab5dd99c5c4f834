"""Whether two runs (base, tuned) can be paired row by row: same word list, same method settings, same shape.

Base and tuned are different models by design; what must agree is everything else. Runs made with other
word lists (words are row labels), other method settings (``top_k``, components, ...) or models of other
architectures (layer count, heads per layer, hidden size) are refused with the mismatch named; runs of one
architecture that explain different layers are compared on the layers they share, with a warning.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

from shiftlens.errors import ShiftlensError, warn
from shiftlens.runs.manifest import read_vocabulary
from shiftlens.storage import read_manifest

# Identity parameters that may differ between base and tuned: the model itself, and the word-list file's hash
# (the words themselves are compared).
PAIRED_FREELY = ("model", "vocab_sha256")


class UnpairedRuns(ShiftlensError, ValueError):
    """Two runs whose rows cannot be paired (other word lists, settings or architectures)."""


def _differences(base: dict[str, Any], tuned: dict[str, Any]) -> list[str]:
    keys = sorted((set(base) | set(tuned)) - set(PAIRED_FREELY))
    return [f"{key}: {base.get(key)!r} → {tuned.get(key)!r}" for key in keys if base.get(key) != tuned.get(key)]


def _words(path: Path) -> list[str] | None:
    try:
        return read_vocabulary(path)
    except (ShiftlensError, OSError):
        return None  # a run without a stored word list (format 1): nothing to compare


def check_same_inputs(base_dir: str | Path, tuned_dir: str | Path, what: str) -> None:
    """Refuse ``what`` runs (heads, FFN) read with other word lists or other method settings, by name."""
    base_dir, tuned_dir = Path(base_dir), Path(tuned_dir)
    if not (base_dir / "manifest.json").exists() or not (tuned_dir / "manifest.json").exists():
        return  # bare output tables (no run directory): only their rows can be checked
    base_words, tuned_words = _words(base_dir), _words(tuned_dir)
    if base_words is not None and tuned_words is not None and base_words != tuned_words:
        only_base, only_tuned = len(set(base_words) - set(tuned_words)), len(set(tuned_words) - set(base_words))
        raise UnpairedRuns(
            f"the base and tuned {what} runs read different word lists ({len(base_words)} vs {len(tuned_words)} "
            f"words, {only_base} only in the base run, {only_tuned} only in the tuned one), so their rows do not "
            "pair; run both models with one --vocab and the same vocabulary options"
        )
    differ = _differences(read_manifest(base_dir).get("params", {}), read_manifest(tuned_dir).get("params", {}))
    if differ:
        raise UnpairedRuns(
            f"the base and tuned {what} runs were made with other settings ({'; '.join(differ)}); "
            "rerun one of them with the other's"
        )


def check_same_shape(what: str, base: dict[int, Any], tuned: dict[int, Any], unit: str) -> list[int]:
    """The layers both runs have; refuses a layer whose ``unit`` count (heads, hidden size) differs, warns
    when the runs explain different layers."""
    shared = sorted(set(base) & set(tuned))
    if not shared:
        raise UnpairedRuns(
            f"the base and tuned {what} runs share no layer (base: {_span(base)}, tuned: {_span(tuned)}); "
            "run both with the same --layers"
        )
    other = [layer for layer in shared if base[layer] != tuned[layer]]
    if other:
        layer = other[0]
        raise UnpairedRuns(
            f"the base and tuned {what} runs come from different architectures: layer {layer} has "
            f"{base[layer]} {unit} in the base run and {tuned[layer]} in the tuned one"
        )
    if set(base) != set(tuned):
        warn(
            f"the base {what} run explains layers {_span(base)}, the tuned one {_span(tuned)}: only the "
            f"{len(shared)} shared layers are compared"
        )
    return shared


def _span(layers: Iterable[int]) -> str:
    values = sorted(layers)
    return f"{values[0]}–{values[-1]} ({len(values)})" if values else "none"
