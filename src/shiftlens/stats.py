"""Small statistics written out from their formulas: summaries, one-sided t-tests, ROC-AUC, Cohen's d.

Conventions: standard deviations use ddof=1; a test that is undefined (fewer than 2 values in a
sample, or zero variance) returns NaN rather than raising, so a table can still be printed. One-sided
p-values test the alternative "mean of a < mean of b".
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from scipy import stats as _scipy_stats

Values = Sequence[float] | np.ndarray


def _array(values: Values) -> np.ndarray:
    return np.asarray(values, dtype=np.float64).ravel()


def summary(values: Values) -> dict[str, float | int]:
    """Mean, sample standard deviation (ddof=1) and count; NaN where undefined."""
    x = _array(values)
    mean = float(x.mean()) if x.size else math.nan
    std = float(x.std(ddof=1)) if x.size > 1 else math.nan
    return {"mean": mean, "std": std, "n": int(x.size)}


def welch_less(a: Values, b: Values) -> float:
    """One-sided Welch t-test p-value for mean(a) < mean(b) (unequal variances, Satterthwaite df)."""
    a, b = _array(a), _array(b)
    if a.size < 2 or b.size < 2:
        return math.nan
    va, vb = a.var(ddof=1) / a.size, b.var(ddof=1) / b.size
    if va + vb <= 0:
        return math.nan
    t = (a.mean() - b.mean()) / math.sqrt(va + vb)
    df = (va + vb) ** 2 / (va**2 / (a.size - 1) + vb**2 / (b.size - 1))
    return float(_scipy_stats.t.cdf(t, df))


def paired_less(a: Values, b: Values) -> float:
    """One-sided paired t-test p-value for mean(a − b) < 0 over aligned pairs."""
    a, b = _array(a), _array(b)
    if a.shape != b.shape:
        raise ValueError(f"paired samples differ in length: {a.size} and {b.size}")
    d = a - b
    if d.size < 2 or d.std(ddof=1) == 0:
        return math.nan
    t = d.mean() / (d.std(ddof=1) / math.sqrt(d.size))
    return float(_scipy_stats.t.cdf(t, d.size - 1))


def roc_auc(scores: Values, labels: Sequence[bool] | np.ndarray) -> float:
    """P(score of a random positive > score of a random negative), ties counting ½ (Mann–Whitney U)."""
    s = _array(scores)
    y = np.asarray(labels, dtype=bool).ravel()
    if s.shape != y.shape:
        raise ValueError(f"{s.size} scores but {y.size} labels")
    n_pos, n_neg = int(y.sum()), int((~y).sum())
    if n_pos == 0 or n_neg == 0:
        return math.nan
    ranks = _scipy_stats.rankdata(s)  # average ranks for ties
    u = ranks[y].sum() - n_pos * (n_pos + 1) / 2
    return float(u / (n_pos * n_neg))


def cohens_d(a: Values, b: Values) -> float:
    """(mean(b) − mean(a)) / pooled standard deviation: positive when b is larger."""
    a, b = _array(a), _array(b)
    if a.size < 2 or b.size < 2:
        return math.nan
    pooled = ((a.size - 1) * a.var(ddof=1) + (b.size - 1) * b.var(ddof=1)) / (a.size + b.size - 2)
    return float((b.mean() - a.mean()) / math.sqrt(pooled)) if pooled > 0 else math.nan


def paired_cohens_dz(a: Values, b: Values) -> float:
    """Mean of (b − a) over its standard deviation (Cohen's d_z for paired samples)."""
    d = _array(b) - _array(a)
    if d.size < 2 or d.std(ddof=1) == 0:
        return math.nan
    return float(d.mean() / d.std(ddof=1))
