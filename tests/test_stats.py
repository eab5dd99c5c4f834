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


def literal_sign_flip_p(d):
    """Every one of the 2^n sign patterns: share with |mean| at least the observed."""
    observed = abs(np.mean(d))
    means = [abs(np.mean(np.array(signs) * d)) for signs in itertools.product((-1, 1), repeat=len(d))]
    return np.mean([m >= observed - 1e-12 for m in means])


def literal_label_p(a, b):
    """Every split of the pooled values into groups of len(a) and len(b)."""
    pooled, observed = np.array(a + b), abs(np.mean(b) - np.mean(a))
    diffs = []
    for chosen in itertools.combinations(range(len(pooled)), len(a)):
        mask = np.zeros(len(pooled), bool)
        mask[list(chosen)] = True
        diffs.append(abs(pooled[~mask].mean() - pooled[mask].mean()))
    return np.mean([x >= observed - 1e-12 for x in diffs])


def monte_carlo_tolerance(p, draws=stats.PERMUTATIONS):
    return 4 * math.sqrt(p * (1 - p) / draws) + 1 / draws


def test_permutation_p_values_match_exact_enumeration():
    d = np.array(B[:7]) - np.array(A) + np.array([0.1, -0.3, 0.05, -0.2, 0.0, -0.25, 0.02])
    exact = literal_sign_flip_p(d)
    assert stats.sign_flip_p(d) == pytest.approx(exact, abs=monte_carlo_tolerance(exact))
    assert stats.sign_flip_p(d, seed=3) == stats.sign_flip_p(d, seed=3)
    a, b = A[:6], [x + 0.05 for x in B[:6]]
    exact = literal_label_p(a, b)
    assert stats.label_permutation_p(a, b) == pytest.approx(exact, abs=monte_carlo_tolerance(exact))
    assert stats.sign_flip_p(np.full(9, 0.3)) == pytest.approx(2 / 512, abs=monte_carlo_tolerance(2 / 512))


def test_summary_with_population_std():
    assert stats.summary(A, ddof=0)["std"] == pytest.approx(np.std(A))
    assert stats.summary([2.0], ddof=0) == {"mean": 2.0, "std": 0.0, "n": 1}


@pytest.mark.parametrize(
    ("values", "ddof", "expected"),
    [
        ([], 1, {"mean": None, "std": None, "n": 0}),
        ([], 0, {"mean": None, "std": None, "n": 0}),
        ([3.0], 1, {"mean": 3.0, "std": None, "n": 1}),  # a sample std needs two values
        ([3.0], 0, {"mean": 3.0, "std": 0.0, "n": 1}),  # the population std of one value is 0
        ([1.0, 4.0], 1, {"mean": 2.5, "std": math.sqrt(4.5), "n": 2}),
        ([1.0, 4.0], 0, {"mean": 2.5, "std": 1.5, "n": 2}),
    ],
)
def test_summary_edge_cases_for_json(values, ddof, expected):
    assert stats.summary_json(values, ddof) == pytest.approx(expected)
    raw = stats.summary(values, ddof)
    assert raw["n"] == expected["n"]
    for key in ("mean", "std"):
        assert math.isnan(raw[key]) if expected[key] is None else raw[key] == pytest.approx(expected[key])


def test_finite_and_json_safe_turn_every_non_finite_number_into_none():
    assert [stats.finite(v) for v in (None, math.nan, math.inf, -math.inf, 2, np.float64(0.5))] == [
        None, None, None, None, 2.0, 0.5,
    ]  # fmt: skip
    assert type(stats.finite(np.float64(0.5))) is float
    nested = {"a": [1.0, math.nan, (math.inf, "x")], "b": {"c": -math.inf, "d": None, "e": 3}}
    assert stats.json_safe(nested) == {"a": [1.0, None, [None, "x"]], "b": {"c": None, "d": None, "e": 3}}


def test_row_wise_effect_sizes_equal_the_scalar_ones():
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(4, 9)), rng.normal(size=(4, 9)) + 0.5
    np.testing.assert_allclose(stats.paired_dz_rows(a, b), [stats.paired_cohens_dz(x, y) for x, y in zip(a, b)])
    np.testing.assert_allclose(stats.cohens_d_rows(a, b[:, :7]), [stats.cohens_d(x, y[:7]) for x, y in zip(a, b)])
    assert np.isnan(stats.paired_dz_rows(np.ones((1, 5)), np.ones((1, 5)))[0])


def test_bootstrap_interval_brackets_the_estimate_and_narrows_with_n():
    rng = np.random.default_rng(1)
    small, large = rng.normal(size=(2, 20)), rng.normal(size=(2, 2000))
    low, high = stats.bootstrap_ci(stats.cohens_d_rows, small[0], small[1] + 1.0)
    assert low < stats.cohens_d(small[0], small[1] + 1.0) < high
    wide = high - low
    low, high = stats.bootstrap_ci(stats.cohens_d_rows, large[0], large[1] + 1.0)
    assert low < 1.0 < high and high - low < wide / 5
    assert all(math.isnan(v) for v in stats.bootstrap_ci(stats.paired_dz_rows, A, A, paired=True))
    with pytest.raises(ValueError, match="differ in length"):
        stats.bootstrap_ci(stats.paired_dz_rows, A, B, paired=True)


@pytest.mark.parametrize(
    ("a", "b", "paired", "reason"),
    [
        ([1.0, 2.0, 3.0], B, False, "side 1: n = 3 < 5"),
        (A, [0.4] * 7, False, "side 2: zero variance (all 0.4)"),
        (A, [x + 0.1 for x in A], True, "differences: zero variance (all 0.1)"),
    ],
)
def test_guarded_tests_refuse_degenerate_data(a, b, paired, reason):
    finding = stats.guarded_finding("m", "c", stats.welch_less, a, b, paired=paired)
    assert not finding.testable and finding.p_value is None and finding.reason == reason
    refused = stats.paired_finding("m", "c", a, b) if paired else stats.two_sample_finding("m", "c", a, b)
    assert refused.reason == reason and refused.ci is None and refused.effect_size is None


def test_guarded_findings_carry_the_test_effect_and_interval():
    finding = stats.guarded_finding("m", "c", stats.welch_less, A, B, effect=stats.cohens_d_rows, ci=True)
    assert finding.testable and finding.p_value == stats.welch_less(A, B)
    assert finding.effect_size == pytest.approx(stats.cohens_d(A, B)) and finding.ci[0] < finding.effect_size
    paired = stats.paired_finding("m", "c", A, B[:7])
    assert paired.effect_size == pytest.approx(stats.paired_cohens_dz(A, B[:7]))
    assert paired.p_value == stats.sign_flip_p(np.array(B[:7]) - np.array(A))
    two = stats.two_sample_finding("m", "c", A, B)
    assert two.p_value == stats.label_permutation_p(A, B) and two.ci[0] < two.effect_size < two.ci[1]
    assert stats.welch_two_sided(A, B) == pytest.approx(scipy_stats.ttest_ind(A, B, equal_var=False).pvalue)


def literal_paired_auc_p(a: list[float], b: list[float], labels: list[bool]) -> float:
    """Exact two-sided p of AUC(b) − AUC(a): every one of the 2^n swaps of an item's two scores."""
    observed = abs(stats.roc_auc(b, labels) - stats.roc_auc(a, labels))
    count = 0
    for swap in itertools.product([False, True], repeat=len(a)):
        x = [bi if s else ai for ai, bi, s in zip(a, b, swap)]
        y = [ai if s else bi for ai, bi, s in zip(a, b, swap)]
        count += abs(stats.roc_auc(y, labels) - stats.roc_auc(x, labels)) >= observed - 1e-12
    return count / 2 ** len(a)


def test_paired_auc_difference_matches_exact_enumeration():
    labels = [True, False, True, False, True, False, True, False, True, False]
    a = [0.2, 0.3, 0.1, 0.5, 0.4, 0.35, 0.3, 0.2, 0.25, 0.45]
    b = [0.9, 0.2, 0.7, 0.4, 0.8, 0.1, 0.6, 0.3, 0.75, 0.15]
    exact = literal_paired_auc_p(a, b, labels)
    assert stats.paired_auc_difference_p(a, b, labels) == pytest.approx(exact, abs=monte_carlo_tolerance(exact))
    rows = np.array([a, b])
    assert stats.roc_auc_rows(rows, np.array(labels)).tolist() == [stats.roc_auc(a, labels), stats.roc_auc(b, labels)]


def test_paired_auc_finding_finds_a_planted_gain_and_refuses_identical_scores():
    rng = np.random.default_rng(0)
    labels = np.arange(60) % 2 == 0
    a = rng.normal(size=60)  # tells nothing
    found = stats.paired_auc_finding("m", "c", a, a + 2.0 * labels + rng.normal(scale=0.5, size=60), labels)
    assert found.p_value < 0.001 and found.effect_size > 0.3 and found.ci[0] < found.effect_size < found.ci[1]
    assert stats.paired_auc_finding("m", "c", a, a, labels).reason == "differences: zero variance (all 0)"
    assert "n = 3 < 5" in stats.paired_auc_finding("m", "c", a[:6], a[:6] + 1, labels[:6]).reason


def test_prediction_p_is_the_t_prediction_interval_and_calibrated():
    null = np.array([0.1, -0.2, 0.05, 0.3, -0.1, 0.0, 0.15, -0.05])
    k, mean, sd = null.size, null.mean(), null.std(ddof=1)
    bound = mean + scipy_stats.t.ppf(0.95, k - 1) * sd * math.sqrt(1 + 1 / k)  # the 95 % upper prediction bound
    assert stats.prediction_greater_p(bound, null) == pytest.approx(0.05, rel=1e-9)
    # under the null a new draw is declared 5 % of the time (normal draws, K = 10, 4000 trials)
    rng = np.random.default_rng(1)
    draws = rng.normal(size=(4000, 11))
    rate = np.mean([stats.prediction_greater_p(row[0], row[1:]) < 0.05 for row in draws])
    assert 0.04 < rate < 0.06


def test_beyond_null_finding_refuses_few_or_constant_draws():
    assert stats.beyond_null_finding("m", "c", 3.0, [0.1, 0.2, 0.0, 0.1]).reason == "null draws: n = 4 < 5"
    assert "zero variance" in stats.beyond_null_finding("m", "c", 3.0, [0.1] * 6).reason
    assert stats.beyond_null_finding("m", "c", None, [0.1, 0.2, 0.0, 0.1, 0.3]).reason
    found = stats.beyond_null_finding("m", "c", 3.0, [0.1, 0.2, 0.0, 0.1, 0.3, None])  # None draws are skipped
    expected = (3.0 - 0.14) / np.std([0.1, 0.2, 0, 0.1, 0.3], ddof=1)
    assert found.p_value < 0.001 and found.effect_size == pytest.approx(expected)
