"""Small statistics written out from their formulas: summaries, t-tests, permutation tests, bootstrap
intervals, ROC-AUC, Cohen's d, and guarded tests that return a `shiftlens.evidence.Finding`.

Conventions: standard deviations use ddof=1 unless asked otherwise; a test that is undefined (fewer than 2
values in a sample, or zero variance) returns NaN rather than raising, so a table can still be printed.
Results go to JSON through `finite` (one number) and `json_safe` (a nested result): NaN and ±inf become
None, the only "undefined" JSON knows; `summary_json` is `summary` so converted.
One-sided p-values test the alternative "mean of a < mean of b". Permutation and bootstrap helpers are
seeded (same inputs and seed, same answer); a Monte Carlo permutation p-value is (1 + k) / (1 + B), k of
B resamples at least as extreme, so it is never 0.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from scipy import stats as _scipy_stats

from shiftlens.evidence import Finding, untestable_reason

Values = Sequence[float] | np.ndarray
PERMUTATIONS = 9999
RESAMPLES = 2000
LEVEL = 0.95
_CHUNK = 1000  # resamples drawn at a time (bounds memory for long samples)


def _array(values: Values) -> np.ndarray:
    return np.asarray(values, dtype=np.float64).ravel()


def summary(values: Values, ddof: int = 1) -> dict[str, float | int]:
    """Mean, standard deviation (``ddof`` 1: sample; 0: population, as the paper's code) and count ``n``.

    Undefined parts are NaN: the mean of no value; the std when n ≤ ddof, so one value has a NaN sample
    std (ddof 1) but a population std (ddof 0) of 0.
    """
    x = _array(values)
    mean = float(x.mean()) if x.size else math.nan
    std = float(x.std(ddof=ddof)) if x.size > ddof else math.nan
    return {"mean": mean, "std": std, "n": int(x.size)}


def finite(value: float | None) -> float | None:
    """``value`` as a float, or None when it is None, NaN or infinite (undefined in a JSON result)."""
    return None if value is None or not math.isfinite(value) else float(value)


def json_safe(value: Any) -> Any:
    """A nested result with every non-finite float (NaN, ±inf) as None and tuples as lists, for JSON."""
    if isinstance(value, float):
        return finite(value)
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    return value


def summary_json(values: Values, ddof: int = 1) -> dict[str, float | int | None]:
    """`summary` for a JSON result: undefined mean or std as None."""
    s = summary(values, ddof)
    return {"mean": finite(s["mean"]), "std": finite(s["std"]), "n": s["n"]}


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


def roc_auc_rows(scores: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """`roc_auc` of every row of ``scores`` (R × n) against one set of labels."""
    y = np.asarray(labels, dtype=bool)
    n_pos, n_neg = int(y.sum()), int((~y).sum())
    if n_pos == 0 or n_neg == 0:
        return np.full(len(scores), math.nan)
    ranks = _scipy_stats.rankdata(scores, axis=1)
    return (ranks[:, y].sum(axis=1) - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg)


def paired_auc_difference_p(
    a: Values, b: Values, labels: Sequence[bool] | np.ndarray, permutations: int = PERMUTATIONS, seed: int = 0
) -> float:
    """Two-sided permutation p for AUC(b) ≠ AUC(a), two scores of the same items (e.g. two models on the same
    records): each item's pair of scores is swapped at random, the labels kept."""
    a, b = _array(a), _array(b)
    y = np.asarray(labels, dtype=bool).ravel()
    observed = abs(roc_auc(b, y) - roc_auc(a, y))
    if not math.isfinite(observed):
        return math.nan
    rng = np.random.default_rng(seed)
    extreme = 0
    for start in range(0, permutations, _CHUNK):
        swap = rng.random((min(_CHUNK, permutations - start), a.size)) < 0.5
        diff = np.abs(roc_auc_rows(np.where(swap, a, b), y) - roc_auc_rows(np.where(swap, b, a), y))
        extreme += int(np.sum(diff >= observed - 1e-12))
    return (1 + extreme) / (1 + permutations)


def paired_auc_finding(
    method: str, claim: str, a: Values, b: Values, labels: Sequence[bool] | np.ndarray, seed: int = 0
) -> Finding:
    """Guarded test of AUC(b) − AUC(a) on the same items (`paired_auc_difference_p`); the effect is the AUC
    difference, with a bootstrap interval over items. Not testable with fewer than `evidence.MIN_N` items of
    a label, a constant score, or identical scores."""
    a, b = _array(a), _array(b)
    y = np.asarray(labels, dtype=bool).ravel()
    reason = untestable_reason(a[y], a[~y]) or untestable_reason(b[y], b[~y])
    if reason is None and float(np.abs(b - a).max(initial=0.0)) == 0.0:
        reason = "differences: zero variance (all 0)"
    if reason:
        return Finding.untestable(method, claim, reason)
    index = np.random.default_rng(seed).integers(0, a.size, (RESAMPLES, a.size))
    values = np.array([roc_auc(b[i], y[i]) - roc_auc(a[i], y[i]) for i in index])
    values = values[np.isfinite(values)]
    tail = (1 - LEVEL) / 2 * 100
    low, high = np.percentile(values, [tail, 100 - tail])
    return Finding(
        method,
        claim,
        testable=True,
        p_value=paired_auc_difference_p(a, b, y, seed=seed),
        effect_size=roc_auc(b, y) - roc_auc(a, y),
        ci=(float(low), float(high)),
    )


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


def welch_two_sided(a: Values, b: Values) -> float:
    """Two-sided Welch t-test p-value for mean(a) ≠ mean(b)."""
    p = welch_less(a, b)
    return min(1.0, 2 * min(p, 1 - p)) if math.isfinite(p) else math.nan


def sign_flip_p(differences: Values, permutations: int = PERMUTATIONS, seed: int = 0) -> float:
    """Two-sided paired permutation p-value for mean(d) ≠ 0: each pair's difference flips sign at random."""
    d = _array(differences)
    if d.size == 0:
        return math.nan
    observed = abs(d.mean())
    rng = np.random.default_rng(seed)
    extreme = 0
    for start in range(0, permutations, _CHUNK):
        signs = rng.integers(0, 2, size=(min(_CHUNK, permutations - start), d.size)) * 2 - 1
        extreme += int(np.sum(np.abs(signs @ d) / d.size >= observed - 1e-12 * max(1.0, observed)))
    return (1 + extreme) / (1 + permutations)


def label_permutation_p(a: Values, b: Values, permutations: int = PERMUTATIONS, seed: int = 0) -> float:
    """Two-sided permutation p-value for mean(a) ≠ mean(b): the pooled values are relabelled at random."""
    a, b = _array(a), _array(b)
    if a.size == 0 or b.size == 0:
        return math.nan
    pooled = np.concatenate([a, b])
    observed = abs(b.mean() - a.mean())
    rng = np.random.default_rng(seed)
    extreme = 0
    for start in range(0, permutations, _CHUNK):
        order = rng.permuted(np.tile(pooled, (min(_CHUNK, permutations - start), 1)), axis=1)
        diff = np.abs(order[:, a.size :].mean(axis=1) - order[:, : a.size].mean(axis=1))
        extreme += int(np.sum(diff >= observed - 1e-12 * max(1.0, observed)))
    return (1 + extreme) / (1 + permutations)


def cohens_d_rows(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """`cohens_d` of each row pair of two (R, n_a) and (R, n_b) arrays (NaN where undefined)."""
    na, nb = a.shape[-1], b.shape[-1]
    if na < 2 or nb < 2:
        return np.full(a.shape[:-1], np.nan)
    pooled = ((na - 1) * a.var(axis=-1, ddof=1) + (nb - 1) * b.var(axis=-1, ddof=1)) / (na + nb - 2)
    diff = b.mean(axis=-1) - a.mean(axis=-1)
    return np.divide(diff, np.sqrt(pooled), out=np.full(diff.shape, np.nan), where=pooled > 0)


def paired_dz_rows(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """`paired_cohens_dz` of each row pair of two (R, n) arrays (NaN where undefined)."""
    d = b - a
    if d.shape[-1] < 2:
        return np.full(d.shape[:-1], np.nan)
    sd = d.std(axis=-1, ddof=1)
    mean = d.mean(axis=-1)
    return np.divide(mean, sd, out=np.full(mean.shape, np.nan), where=sd > 0)


def bootstrap_ci(
    statistic: Callable[[np.ndarray, np.ndarray], np.ndarray],
    a: Values,
    b: Values,
    *,
    paired: bool = False,
    resamples: int = RESAMPLES,
    level: float = LEVEL,
    seed: int = 0,
) -> tuple[float, float]:
    """Percentile bootstrap interval of a two-sample statistic; ``paired`` resamples the pairs jointly.

    ``statistic`` maps resampled (R, n) arrays to R values (e.g. `paired_dz_rows`, `cohens_d_rows`).
    Resamples where it is undefined (NaN) are dropped; (NaN, NaN) when none is defined.
    """
    a, b = _array(a), _array(b)
    if paired and a.size != b.size:
        raise ValueError(f"paired samples differ in length: {a.size} and {b.size}")
    rng = np.random.default_rng(seed)
    values = []
    for start in range(0, resamples, _CHUNK):
        rows = min(_CHUNK, resamples - start)
        index_a = rng.integers(0, a.size, (rows, a.size))
        index_b = index_a if paired else rng.integers(0, b.size, (rows, b.size))
        values.append(statistic(a[index_a], b[index_b]))
    drawn = np.concatenate(values)
    drawn = drawn[np.isfinite(drawn)]
    if not drawn.size:
        return math.nan, math.nan
    tail = (1 - level) / 2 * 100
    low, high = np.percentile(drawn, [tail, 100 - tail])
    return float(low), float(high)


def guarded_finding(
    method: str,
    claim: str,
    test: Callable[..., float],
    a: Values,
    b: Values,
    *,
    paired: bool = False,
    effect: Callable[[np.ndarray, np.ndarray], np.ndarray] | None = None,
    ci: bool = False,
    seed: int = 0,
) -> Finding:
    """``test(a, b)`` as a `Finding`, or "not testable" with the reason when the data are degenerate.

    Degenerate: fewer than `evidence.MIN_N` values or zero variance on a side, or (``paired``) identical
    differences. ``effect`` (row-wise, as `bootstrap_ci` takes it) gives the effect size; ``ci`` adds its
    bootstrap interval.
    """
    a, b = _array(a), _array(b)
    if paired and a.shape != b.shape:
        raise ValueError(f"paired samples differ in length: {a.size} and {b.size}")
    reason = untestable_reason(a, b)
    d = b - a if paired else None
    if reason is None and d is not None and float(np.ptp(d)) <= 1e-12 * max(1.0, float(np.abs(d).max())):
        reason = f"differences: zero variance (all {float(d[0]):.4g})"  # equal up to rounding
    if reason:
        return Finding.untestable(method, claim, reason)
    return Finding(
        method,
        claim,
        testable=True,
        p_value=float(test(a, b)),
        effect_size=None if effect is None else float(effect(a[None], b[None])[0]),
        ci=bootstrap_ci(effect, a, b, paired=paired, seed=seed) if effect is not None and ci else None,
    )


def paired_finding(method: str, claim: str, a: Values, b: Values, seed: int = 0) -> Finding:
    """Guarded paired test of b against a: sign-flip permutation p (two-sided), d_z with its bootstrap CI."""
    return guarded_finding(
        method,
        claim,
        lambda x, y: sign_flip_p(y - x, seed=seed),
        a,
        b,
        paired=True,
        effect=paired_dz_rows,
        ci=True,
        seed=seed,
    )


def _prediction_t(value: float, null: Values) -> tuple[float, int]:
    """t = (value − mean) / (s √(1 + 1/K)) of K null draws, and its K − 1 degrees of freedom (NaN if undefined)."""
    x = _array(null)
    if x.size < 2 or float(x.std(ddof=1)) == 0.0:
        return math.nan, max(x.size - 1, 1)
    return float((value - x.mean()) / (x.std(ddof=1) * math.sqrt(1 + 1 / x.size))), x.size - 1


def prediction_greater_p(value: float, null: Values) -> float:
    """One-sided p that one more draw of the null exceeds ``value``, the null normal with unknown mean and
    variance (the t prediction interval of K draws): a p finer than the draws' rank p, 1 / (K + 1), allows."""
    t, df = _prediction_t(value, null)
    return float(_scipy_stats.t.sf(t, df))


def prediction_two_sided_p(value: float, null: Values) -> float:
    """Two-sided `prediction_greater_p`: one more null draw at least as far from the null mean as ``value``."""
    t, df = _prediction_t(value, null)
    return float(2 * _scipy_stats.t.sf(abs(t), df))


def beyond_null_finding(method: str, claim: str, value: float | None, null: Values) -> Finding:
    """Whether ``value`` (an effect size, the planted direction positive) exceeds a null of the same statistic
    measured K times (e.g. on K noise models): `prediction_greater_p`, guarded like every test (K ≥ 5, the
    draws not constant); the effect is (value − null mean) / null std."""
    x = _array(null)
    x = x[np.isfinite(x)]
    if value is None or not math.isfinite(value):
        return Finding.untestable(method, claim, "the statistic itself is not testable")
    reason = untestable_reason(x)
    if reason:
        return Finding.untestable(method, claim, f"null draws: {reason.removeprefix('side 1: ')}")
    return Finding(
        method,
        claim,
        testable=True,
        p_value=prediction_greater_p(value, x),
        effect_size=float((value - x.mean()) / x.std(ddof=1)),
    )


def two_sample_finding(method: str, claim: str, a: Values, b: Values, seed: int = 0) -> Finding:
    """Guarded test of b against a (independent samples): permutation p (two-sided), Cohen's d with its CI."""
    return guarded_finding(
        method,
        claim,
        lambda x, y: label_permutation_p(x, y, seed=seed),
        a,
        b,
        effect=cohens_d_rows,
        ci=True,
        seed=seed,
    )
