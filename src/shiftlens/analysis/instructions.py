"""Instruction recognition (paper Tables 1–2 and the position profile) from two attribution runs.

Per example: importance density of each prompt token (`shiftlens.density`), the instruction score
over the instruction mask, and a 10-bin position profile. Then, per group:
Table 1 (tuned run): followed (rating ≥ 2) vs unfollowed (0 < rating < 2) scores, one-sided Welch
p-value (unfollowed < followed) and ROC-AUC of the score predicting "followed";
Table 2: base vs tuned scores, one-sided Welch p-value (base < tuned), one-sided paired t-test on
the examples present in both runs, Cohen's d (and d_z for the pairs).
Examples whose response has fewer than `min_response_tokens` tokens are left out of everything.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from shiftlens import stats
from shiftlens.attribution.records import ExampleAttribution
from shiftlens.data import group_of
from shiftlens.density import DensityParams, importance_density, instruction_score

KNOWN_GROUPS = ("self_instruct", "lima", "mt_bench")
ALL = "all"
BINS = 10
DEFAULT_PARAMS = DensityParams()


@dataclass(frozen=True)
class ExampleScore:
    """One example's instruction score, position profile (NaN for empty bins) and labels."""

    id: str
    group: str
    score: float
    profile: np.ndarray
    n_response: int
    rating: float | None


def position_profile(density: np.ndarray, bins: int = BINS) -> np.ndarray:
    """Mean max-normalised density per relative-position bin; token n of N falls in bin ⌊bins·(n+½)/N⌋.

    Bins with no token (prompts shorter than `bins`) are NaN; an all-zero density gives all NaN.
    """
    density = np.asarray(density, dtype=np.float64)
    n = density.size
    peak = density.max(initial=0.0)
    if n == 0 or peak <= 0:
        return np.full(bins, np.nan)
    which = np.floor(bins * (np.arange(n) + 0.5) / n).astype(int)
    sums = np.bincount(which, weights=density / peak, minlength=bins)
    counts = np.bincount(which, minlength=bins)
    return np.divide(sums, counts, out=np.full(bins, np.nan), where=counts > 0)


def score_example(
    record: ExampleAttribution, params: DensityParams = DEFAULT_PARAMS, rating: float | None = None
) -> ExampleScore:
    """Density, instruction score and position profile of one record (`rating` overrides the record's)."""
    density = importance_density(record.attribution, params)
    return ExampleScore(
        id=record.id,
        group=record.group or group_of(record.id),
        score=instruction_score(density, np.asarray(record.instruction_mask, dtype=bool)),
        profile=position_profile(density),
        n_response=len(record.response_tokens),
        rating=record.rating if rating is None else rating,
    )


def _finite(value: float | None) -> float | None:
    return None if value is None or not math.isfinite(value) else float(value)


def _summary(values: Sequence[float]) -> dict[str, Any]:
    s = stats.summary(values)
    return {"mean": _finite(s["mean"]), "std": _finite(s["std"]), "n": s["n"]}


def _mean_profile(items: Iterable[ExampleScore]) -> list[float | None]:
    rows = [item.profile for item in items if not np.all(np.isnan(item.profile))]
    if not rows:
        return [None] * BINS
    stacked = np.vstack(rows)
    counts = (~np.isnan(stacked)).sum(axis=0)
    sums = np.nansum(stacked, axis=0)
    return [_finite(s / c) if c else None for s, c in zip(sums, counts)]


def _groups(*collections: Iterable[ExampleScore]) -> list[str]:
    present = {item.group for items in collections for item in items}
    return [g for g in KNOWN_GROUPS if g in present] + sorted(present - set(KNOWN_GROUPS)) + [ALL]


def _in_group(items: Iterable[ExampleScore], group: str) -> list[ExampleScore]:
    return [item for item in items if group == ALL or item.group == group]


def is_followed(rating: float | None) -> bool | None:
    """True for rating ≥ 2, False for 0 < rating < 2, None (excluded) for missing or ≤ 0 ratings."""
    if rating is None or not math.isfinite(rating) or rating <= 0:
        return None
    return rating >= 2


def _table1_row(items: list[ExampleScore]) -> dict[str, Any]:
    labelled = [(item.score, is_followed(item.rating)) for item in items]
    labelled = [(score, label) for score, label in labelled if label is not None]
    followed = [score for score, label in labelled if label]
    unfollowed = [score for score, label in labelled if not label]
    return {
        "followed": _summary(followed),
        "unfollowed": _summary(unfollowed),
        "p_value": _finite(stats.welch_less(unfollowed, followed)),
        "auc": _finite(stats.roc_auc([s for s, _ in labelled], [lab for _, lab in labelled])),
        "effect_size": _finite(stats.cohens_d(unfollowed, followed)),
    }


def _table2_row(base: list[ExampleScore], tuned: list[ExampleScore]) -> dict[str, Any]:
    base_scores, tuned_scores = [b.score for b in base], [t.score for t in tuned]
    tuned_by_id = {t.id: t.score for t in tuned}
    pairs = [(b.score, tuned_by_id[b.id]) for b in base if b.id in tuned_by_id]
    paired_base, paired_tuned = [p[0] for p in pairs], [p[1] for p in pairs]
    return {
        "base": _summary(base_scores),
        "tuned": _summary(tuned_scores),
        "p_value": _finite(stats.welch_less(base_scores, tuned_scores)),
        "paired_p_value": _finite(stats.paired_less(paired_base, paired_tuned)),
        "n_paired": len(pairs),
        "effect_size": _finite(stats.cohens_d(base_scores, tuned_scores)),
        "paired_effect_size": _finite(stats.paired_cohens_dz(paired_base, paired_tuned)),
    }


def analyze_instructions(
    base_records: Sequence[ExampleAttribution],
    tuned_records: Sequence[ExampleAttribution],
    ratings: dict[str, float] | None = None,
    *,
    params: DensityParams = DEFAULT_PARAMS,
    min_response_tokens: int = 5,
) -> dict[str, Any]:
    """Tables 1–2 and the position profile of a base and a tuned run, as a JSON-safe dict.

    `ratings` (example id → rating of the tuned response) override the tuned records' own ratings.
    Keys: table1, table2, position_profile (all groups), position_profile_by_group, scores (one row
    per example id: group, rating, base and tuned score), excluded (ids left out, per run and reason).
    """
    ratings = ratings or {}
    base = [score_example(r, params) for r in base_records]
    tuned = [score_example(r, params, ratings.get(r.id)) for r in tuned_records]
    excluded = {
        name: sorted(item.id for item in items if item.n_response < min_response_tokens)
        for name, items in (("base", base), ("tuned", tuned))
    }
    base = [item for item in base if item.n_response >= min_response_tokens]
    tuned = [item for item in tuned if item.n_response >= min_response_tokens]
    groups = _groups(base, tuned)
    profiles = {
        g: {"base": _mean_profile(_in_group(base, g)), "tuned": _mean_profile(_in_group(tuned, g))} for g in groups
    }
    return {
        "table1": {g: _table1_row(_in_group(tuned, g)) for g in groups if _in_group(tuned, g)},
        "table2": {g: _table2_row(_in_group(base, g), _in_group(tuned, g)) for g in groups},
        "position_profile": profiles[ALL],
        "position_profile_by_group": {g: p for g, p in profiles.items() if g != ALL},
        "scores": _score_rows(base, tuned),
        "excluded": {
            "min_response_tokens": min_response_tokens,
            "short_response": excluded,
            "unrated": sorted(item.id for item in tuned if is_followed(item.rating) is None),
        },
        "params": {"levels": params.levels, "threshold": params.threshold, "p": params.p, "bins": BINS},
    }


def _score_rows(base: list[ExampleScore], tuned: list[ExampleScore]) -> list[dict[str, Any]]:
    rows: dict[str, dict[str, Any]] = {}
    for name, items in (("base", base), ("tuned", tuned)):
        for item in items:
            row = rows.setdefault(item.id, {"id": item.id, "group": item.group, "rating": None, "base": None})
            row[name] = item.score
            if name == "tuned":
                row["rating"] = _finite(item.rating)
    for row in rows.values():
        row.setdefault("tuned", None)
    return sorted(rows.values(), key=lambda row: (row["group"], row["id"]))
