"""Statistics helpers against scipy and against literal definitions on hand data."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from scipy import stats as scipy_stats

from shiftlens import stats

A = [0.31, 0.12, 0.45, 0.27, 0.39, 0.18, 0.22]
B = [0.52, 0.41, 0.66, 0.38, 0.71, 0.49, 0.58, 0.44, 0.60]


def test_summary_matches_numpy_with_sample_std():
    s = stats.summary(A)
    assert s == {"mean": pytest.approx(np.mean(A)), "std": pytest.approx(np.std(A, ddof=1)), "n": 7}
    assert math.isnan(stats.summary([1.0])["std"]) and math.isnan(stats.summary([])["mean"])


@pytest.mark.parametrize("a,b", [(A, B), (B, A), (A, [x + 0.01 for x in A[::-1]])])
def test_welch_one_sided_matches_scipy(a, b):
    expected = scipy_stats.ttest_ind(a, b, equal_var=False, alternative="less").pvalue
    assert stats.welch_less(a, b) == pytest.approx(expected, rel=1e-10)


def test_welch_direction_and_degenerate_cases():
    assert stats.welch_less(A, B) < 0.001 < 0.999 < stats.welch_less(B, A)
    assert math.isnan(stats.welch_less([1.0], B))
    assert math.isnan(stats.welch_less([2.0, 2.0], [2.0, 2.0]))


def test_paired_one_sided_matches_scipy():
    a, b = A, [x + d for x, d in zip(A, [0.05, -0.01, 0.08, 0.02, 0.03, 0.0, 0.06])]
    expected = scipy_stats.ttest_rel(a, b, alternative="less").pvalue
    assert stats.paired_less(a, b) == pytest.approx(expected, rel=1e-10)
    assert stats.paired_less(b, a) == pytest.approx(1 - expected, rel=1e-10)
    with pytest.raises(ValueError, match="differ in length"):
        stats.paired_less(A, B)


def literal_auc(scores, labels):
    """Count every (positive, negative) pair: 1 if the positive scores higher, ½ on a tie."""
    pos = [s for s, y in zip(scores, labels) if y]
    neg = [s for s, y in zip(scores, labels) if not y]
    wins = sum(1.0 if p > n else 0.5 if p == n else 0.0 for p, n in itertools.product(pos, neg))
    return wins / (len(pos) * len(neg))


def test_auc_matches_literal_pairwise_count_with_ties():
    scores = [0.1, 0.4, 0.35, 0.8, 0.4, 0.4, 0.9, 0.05, 0.35, 0.6]
    labels = [False, True, False, True, False, True, True, False, True, False]
    assert stats.roc_auc(scores, labels) == pytest.approx(literal_auc(scores, labels), abs=1e-12)
    rng = np.random.default_rng(0)
    s, y = rng.integers(0, 5, 60).astype(float), rng.random(60) < 0.4
    assert stats.roc_auc(s, y) == pytest.approx(literal_auc(s, y), abs=1e-12)


def test_auc_extremes_and_undefined():
    assert stats.roc_auc([1, 2, 3, 4], [False, False, True, True]) == 1.0
    assert stats.roc_auc([1, 2, 3, 4], [True, True, False, False]) == 0.0
    assert math.isnan(stats.roc_auc([1, 2], [True, True]))


def test_cohens_d_from_definition():
    pooled = math.sqrt(((len(A) - 1) * np.var(A, ddof=1) + (len(B) - 1) * np.var(B, ddof=1)) / (len(A) + len(B) - 2))
    assert stats.cohens_d(A, B) == pytest.approx((np.mean(B) - np.mean(A)) / pooled)
    d = np.array(B[:7]) - np.array(A)
    assert stats.paired_cohens_dz(A, B[:7]) == pytest.approx(d.mean() / d.std(ddof=1))
