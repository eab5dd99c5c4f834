"""The two tests of the heads comparison (Table 3): per protocol, one function from two samples to a verdict.

``sound``: a two-sided word-label permutation test of the difference in means (instruction − control),
the effect being that difference with a percentile bootstrap 95 % interval (words resampled within each
side). ``paper``: the authors' two-sided Welch t-test, with the Welch 95 % interval of the difference.
Both refuse degenerate samples (`shiftlens.evidence.untestable_reason`) instead of returning a p-value.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from shiftlens.evidence import untestable_reason

PERMUTATIONS = 9999
BOOTSTRAP_RESAMPLES = 4999
CONFIDENCE = 0.95


@dataclass(frozen=True)
class TestResult:
    """A comparison's verdict: the test used, and either the reason it was not run or its results."""

    test: str
    testable: bool
    reason: str | None = None
    p_value: float | None = None
    effect_size: float | None = None
    ci: tuple[float, float] | None = None


def permutation_p(a: np.ndarray, b: np.ndarray, permutations: int, rng: np.random.Generator) -> float:
    """Two-sided p of mean(a) − mean(b) under random relabelling: (1 + #{|d*| ≥ |d|}) / (1 + permutations)."""
    pooled = np.concatenate([a, b])
    observed = abs(a.mean() - b.mean())
    shuffled = rng.permuted(np.broadcast_to(pooled, (permutations, pooled.size)), axis=1)
    diffs = np.abs(shuffled[:, : a.size].mean(1) - shuffled[:, a.size :].mean(1))
    exceed = int(np.count_nonzero(diffs >= observed - 1e-12 * max(1.0, observed)))
    return (1 + exceed) / (1 + permutations)


def bootstrap_ci(
    a: np.ndarray, b: np.ndarray, resamples: int, rng: np.random.Generator, level: float = CONFIDENCE
) -> tuple[float, float]:
    """Percentile bootstrap interval of mean(a) − mean(b), each side resampled with replacement."""
    ra = a[rng.integers(0, a.size, (resamples, a.size))].mean(1)
    rb = b[rng.integers(0, b.size, (resamples, b.size))].mean(1)
    tail = (1 - level) / 2 * 100
    lo, hi = np.percentile(ra - rb, [tail, 100 - tail])
    return float(lo), float(hi)


def permutation_test(
    a: np.ndarray,
    b: np.ndarray,
    rng: np.random.Generator,
    permutations: int = PERMUTATIONS,
    resamples: int = BOOTSTRAP_RESAMPLES,
) -> TestResult:
    """The sound protocol's test of sample a (instruction words) against sample b (control words)."""
    test = f"word-label permutation test, two-sided, {permutations} permutations"
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    reason = untestable_reason(a, b)
    if reason:
        return TestResult(test, False, reason)
    return TestResult(
        test,
        True,
        p_value=permutation_p(a, b, permutations, rng),
        effect_size=float(a.mean() - b.mean()),
        ci=bootstrap_ci(a, b, resamples, rng),
    )


def welch_test(a: np.ndarray, b: np.ndarray) -> TestResult:
    """The paper protocol's test: two-sided Welch t-test of mean(a) − mean(b), with its 95 % interval."""
    test = "Welch t-test, two-sided"
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    reason = untestable_reason(a, b)
    if reason:
        return TestResult(test, False, reason)
    from scipy import stats as scipy_stats  # here, so that the defaults above load without scipy

    result = scipy_stats.ttest_ind(a, b, equal_var=False)
    interval = result.confidence_interval(CONFIDENCE)
    return TestResult(
        test,
        True,
        p_value=float(result.pvalue),
        effect_size=float(a.mean() - b.mean()),
        ci=(float(interval.low), float(interval.high)),
    )
