"""One example's instruction score: importance density, the score over the instruction mask, a position profile.

`score_example` turns an attribution record into an `ExampleScore` (`shiftlens.density`); `is_followed`
reads a rating as followed / unfollowed / excluded (the paper's Table 1 split).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from shiftlens.attribution.records import ExampleAttribution
from shiftlens.density import DensityParams, importance_density, instruction_score
from shiftlens.examples import group_of

BINS = 10
DEFAULT_PARAMS = DensityParams()


@dataclass(frozen=True)
class ExampleScore:
    """One example's density, instruction mask and score, position profile (NaN for empty bins) and labels."""

    id: str
    group: str
    score: float
    profile: np.ndarray
    n_response: int
    rating: float | None
    density: np.ndarray
    mask: np.ndarray


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
    record: ExampleAttribution,
    params: DensityParams = DEFAULT_PARAMS,
    rating: float | None = None,
    mask: np.ndarray | None = None,
) -> ExampleScore:
    """Density, instruction score and position profile of one record (`rating`/`mask` override the record's)."""
    density = importance_density(record.attribution, params)
    mask = np.asarray(record.instruction_mask if mask is None else mask, dtype=bool)
    return ExampleScore(
        id=record.id,
        group=record.group or group_of(record.id),
        score=instruction_score(density, mask),
        profile=position_profile(density),
        n_response=len(record.response_tokens),
        rating=record.rating if rating is None else rating,
        density=density,
        mask=mask,
    )


def is_followed(rating: float | None) -> bool | None:
    """True for rating ≥ 2, False for 0 < rating < 2, None (excluded) for missing or ≤ 0 ratings."""
    if rating is None or not math.isfinite(rating) or rating <= 0:
        return None
    return rating >= 2
