"""The report's summary: the three findings of the paper, restated from our numbers in plain language.

Each finding is computed from the plain result dicts alone; wording is cautious when p ≥ `ALPHA`
(a non-significant difference is reported as "no clear evidence", never as a finding).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from shiftlens.report.svg import fmt_number

ALPHA = 0.05
DEFAULT_TEST = "Welch, one-sided"
LEXICAL_ANNOTATORS = {"lexical", "heuristic", "wordnet", "keyword"}


@dataclass(frozen=True)
class Finding:
    """One headline: which analysis, a plain-language sentence, the p-value behind it, and significance."""

    title: str
    sentence: str
    p_value: float | None
    significant: bool


def fmt_p(p: float | None) -> str:
    """A p-value as text ("p = 0.003", "p < 0.001", "p = –" when missing)."""
    if p is None or not math.isfinite(p):
        return "p = –"
    return "p < 0.001" if p < 0.001 else f"p = {p:.3g}"


def _mean(stats: Any) -> float | None:
    value = stats.get("mean") if isinstance(stats, dict) else None
    return float(value) if isinstance(value, (int, float)) else None


def _p(entry: dict[str, Any], key: str = "p_value") -> float | None:
    value = entry.get(key)
    return float(value) if isinstance(value, (int, float)) and math.isfinite(value) else None


def _claim(subject: str, more: bool, significant: bool) -> str:
    verb = "more" if more else "less"
    return f"{subject} {verb}" if significant else f"No clear evidence that {subject[0].lower()}{subject[1:]} {verb}"


def instruction_finding(section: dict[str, Any]) -> Finding | None:
    """Finding 1: does the tuned model attribute more of its response to instruction words?"""
    table = section.get("table2") or {}
    if not table:
        return None
    group = "all" if "all" in table else next(iter(table))
    row = table[group]
    base, tuned, p = _mean(row.get("base")), _mean(row.get("tuned")), _p(row)
    if base is None or tuned is None:
        return None
    significant = p is not None and p < ALPHA
    where = "" if group == "all" else f" ({group} prompts)"
    sentence = (
        f"{_claim('The tuned model attends', tuned > base, significant)} to instruction words{where}: "
        f"mean instruction score {fmt_number(tuned)} vs {fmt_number(base)} (base), "
        f"{fmt_p(p)} ({section.get('test', DEFAULT_TEST)})."
    )
    paired = _p(row, "paired_p_value")
    if paired is not None:
        sentence += f" Paired over the same prompts: {fmt_p(paired)}."
    return Finding("Instruction attention", sentence, p, significant)


def heads_finding(section: dict[str, Any]) -> Finding | None:
    """Finding 2: do attention heads' word pairs favour instruction words over general words?

    The layer group with the smallest p is reported with its p Bonferroni-corrected for the number of
    groups looked at, so picking the best group cannot manufacture a finding.
    """
    groups = [g for g in section.get("groups") or [] if _p(g) is not None]
    if not groups:
        return None
    best = min(groups, key=lambda g: _p(g))
    inst, general = _mean(best.get("instruction")), _mean(best.get("general"))
    if inst is None or general is None:
        return None
    p = min(1.0, _p(best) * len(groups))
    n_words = best["instruction"].get("n") if isinstance(best.get("instruction"), dict) else None
    lo, hi = (list(best.get("layers") or []) + ["?", "?"])[:2]
    significant = p < ALPHA
    sentence = (
        f"{_claim('Instruction words gain', inst > general, significant)} than general words in the attention "
        f"heads' word pairs of layers {lo}–{hi}: fraction of heads where a word became more frequent "
        f"after tuning {fmt_number(inst)} vs {fmt_number(general)}"
        + (f" ({n_words} instruction words)" if n_words is not None else "")
        + f", {fmt_p(p)} ({DEFAULT_TEST}, Bonferroni-corrected: the layer group with the smallest p of "
        f"{len(groups)})."
    )
    return Finding("Attention heads", sentence, p, significant)


def is_heuristic(section: dict[str, Any]) -> bool:
    """Whether the FFN concept labels came from the offline lexical heuristic rather than an LLM or people."""
    annotations = section.get("annotations") or {}
    return bool(annotations.get("heuristic")) or str(section.get("annotator", "")).lower() in LEXICAL_ANNOTATORS


def ffn_finding(section: dict[str, Any]) -> Finding | None:
    """Finding 3: which task category of feed-forward concepts changed most after tuning?"""
    tasks = {
        name: row
        for name, row in (section.get("tasks") or {}).items()
        if _mean(row.get("base")) is not None and _mean(row.get("tuned")) is not None
    }
    if not tasks:
        return _rotation_finding(section.get("rotation_by_layer") or [])
    name, row = max(tasks.items(), key=lambda kv: abs(_mean(kv[1]["tuned"]) - _mean(kv[1]["base"])))
    base, tuned, p = _mean(row["base"]), _mean(row["tuned"]), _p(row)
    significant = p is not None and p < ALPHA
    n_sig = sum(1 for r in tasks.values() if (_p(r) or 1.0) < ALPHA)
    verb = "rises" if tuned > base else "falls"
    lead = "" if significant else "No clear evidence of a change: "
    sentence = (
        f"{lead}the share of feed-forward concepts labelled '{name}' {verb} from {fmt_number(base)} (base) "
        f"to {fmt_number(tuned)} (tuned), {fmt_p(p)}; {n_sig} of {len(tasks)} task categories differ at "
        f"p < {ALPHA}."
    )
    if is_heuristic(section):
        sentence += " These are heuristic labels from a lexical annotator, not human or LLM annotations."
    return Finding("Feed-forward concepts", sentence, p, significant)


def _rotation_finding(rotation: list[dict[str, Any]]) -> Finding | None:
    """Without concept labels: how far the FFN principal subspaces rotated (no test, so no verdict)."""
    angles = [
        r["mean_principal_angle_deg"] for r in rotation if isinstance(r.get("mean_principal_angle_deg"), (int, float))
    ]
    if not angles:
        return None
    sentence = (
        f"Concepts were not annotated; the FFN principal subspaces rotate by a mean principal angle of "
        f"{fmt_number(sum(angles) / len(angles))}° over {len(angles)} layers (descriptive, no test)."
    )
    return Finding("Feed-forward concepts", sentence, None, False)


def findings(results: dict[str, Any]) -> list[tuple[str, Finding | None]]:
    """The three findings in paper order, each ``None`` when its analysis was not run or is incomplete."""
    return [
        ("instructions", instruction_finding(results.get("instructions") or {})),
        ("heads", heads_finding(results.get("heads") or {})),
        ("ffn", ffn_finding(results.get("ffn") or {})),
    ]
