"""Table 5 statistics: components as the unit, the degenerate-data guard, planted shifts found, nulls quiet."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from scipy import stats
from support.labels import label

from shiftlens.evidence import holm
from shiftlens.ffn.prompts import LEVELS, TASKS
from shiftlens.ffn.statistics import Units, cluster_bootstrap, component_units, run_units, stratified_permutation_p
from shiftlens.ffn.table5 import layer_groups, per_layer_group, table5


def planted_rows(rng, layers, per_layer, coding, level_probs=(0.1, 0.2, 0.3, 0.4)):
    """One run of labels, every component nameable: 'coding' with probability ``coding``, levels drawn."""
    return [
        label(
            layer,
            c,
            tasks=["coding"] if rng.random() < coding else ["daily writing"],
            level=LEVELS[rng.choice(4, p=level_probs)],
        )
        for layer in range(layers)
        for c in range(per_layer)
    ]


def test_runs_are_averaged_per_component_before_anything_else():
    rows = [label(0, 0, run, tasks=["coding"] if run < 3 else ["math"]) for run in range(5)]
    rows += [label(0, 1, run, tasks=["math"], nameable=run < 2) for run in range(5)]  # named in 2 of 5 runs
    rows += [label(1, 0, run, tasks=["coding"], tasks_status="unparseable" if run == 0 else "ok") for run in range(5)]
    units = component_units(rows, "tasks", ("coding", "math"))
    np.testing.assert_array_equal(units.layers, [0, 0, 1])
    np.testing.assert_allclose(units.values, [[0.6, 0.4], [0.0, 1.0], [1.0, 0.0]])
    np.testing.assert_array_equal(units.totals, [5, 2, 4])  # answered runs behind each component
    nameable = component_units(rows, "nameable", ("nameable",))
    np.testing.assert_allclose(nameable.values[:, 0], [1.0, 0.4, 1.0])
    by_run = run_units(rows, "tasks", ("coding", "math"))  # the paper's unit: one share per run
    np.testing.assert_allclose(by_run.values[:, 0], [1 / 2, 2 / 3, 1, 1 / 2, 1 / 2])


def exact_stratified_p(base: Units, tuned: Units, column: int) -> float:
    """Every within-layer assignment of the model labels enumerated: the exact permutation p, written out."""
    layers = sorted(set(base.layers) | set(tuned.layers))
    pooled = [
        np.concatenate([base.values[base.layers == layer, column], tuned.values[tuned.layers == layer, column]])
        for layer in layers
    ]
    sizes = [int((tuned.layers == layer).sum()) for layer in layers]
    observed = tuned.values[:, column].mean() - base.values[:, column].mean()
    total = sum(p.sum() for p in pooled)
    hits = count = 0
    choices = [itertools.combinations(range(len(p)), k) for p, k in zip(pooled, sizes)]
    for assignment in itertools.product(*[list(c) for c in choices]):
        tuned_sum = sum(p[list(idx)].sum() for p, idx in zip(pooled, assignment))
        d = tuned_sum / len(tuned) - (total - tuned_sum) / len(base)
        hits += abs(d) >= abs(observed) - 1e-12
        count += 1
    return hits / count


def test_stratified_permutation_p_agrees_with_exhaustive_enumeration():
    rng = np.random.default_rng(4)
    base = Units(np.array([0, 0, 0, 1, 1, 1, 1]), (rng.random((7, 2)) < 0.3).astype(float), None, None)
    tuned = Units(np.array([0, 0, 0, 1, 1, 1]), (rng.random((6, 2)) < 0.7).astype(float), None, None)
    p = stratified_permutation_p(base, tuned, 40_000, np.random.default_rng(0))
    for column in range(2):
        exact = exact_stratified_p(base, tuned, column)
        assert 0.0 < exact < 1.0
        assert p[column] == pytest.approx(exact, abs=0.01)  # Monte Carlo sd ≈ 0.0025


def test_permutation_keeps_each_layers_composition():
    """A layer where tuned has all the 'coding' labels but base has none of that layer is no evidence."""
    base = Units(np.array([0] * 10), np.zeros((10, 1)), None, None)
    tuned = Units(np.array([1] * 10), np.ones((10, 1)), None, None)  # the two models share no layer
    assert stratified_permutation_p(base, tuned, 500, np.random.default_rng(0))[0] == 1.0


def test_cluster_bootstrap_interval_brackets_the_share_difference():
    rng = np.random.default_rng(1)
    base = component_units(planted_rows(rng, 8, 30, 0.2), "tasks", TASKS)
    tuned = component_units(planted_rows(rng, 8, 30, 0.6), "tasks", TASKS)
    base_ci, tuned_ci, diff_ci = cluster_bootstrap(base, tuned, 1000, np.random.default_rng(0))
    coding = TASKS.index("coding")
    difference = tuned.values[:, coding].mean() - base.values[:, coding].mean()
    assert diff_ci[coding, 0] < difference < diff_ci[coding, 1] and diff_ci[coding, 0] > 0.2
    assert base_ci[coding, 0] < base.values[:, coding].mean() < base_ci[coding, 1]
    assert 0.02 < diff_ci[coding, 1] - diff_ci[coding, 0] < 0.3


def test_a_share_that_differs_across_many_components_is_found():
    rng = np.random.default_rng(2)
    result = table5(planted_rows(rng, 8, 30, 0.2), planted_rows(rng, 8, 30, 0.6), permutations=4000, resamples=500)
    coding = result["tasks"]["coding"]
    assert coding["testable"] and coding["significant"] and coding["p_adjusted"] < 0.01
    assert coding["difference"] == pytest.approx(0.4, abs=0.1)
    assert coding["ci"][0] > 0.2 and coding["ci"][0] < coding["difference"] < coding["ci"][1]
    assert coding["base"]["n"] == coding["tuned"]["n"] == 240  # components, not runs
    assert not any(row["significant"] for row in result["levels"].values())  # same level distribution
    finding = next(f for f in result["finding"] if "'coding'" in f.claim)
    assert finding.significant and finding.effect_size == coding["difference"]
    assert "of 240 nameable components" in finding.claim


@pytest.mark.parametrize("seed", range(3))
def test_identical_distributions_are_not_a_finding(seed):
    rng = np.random.default_rng(10 + seed)
    base, tuned = planted_rows(rng, 8, 30, 0.4), planted_rows(rng, 8, 30, 0.4)
    result = table5(base, tuned, permutations=2000, resamples=200)
    rows = [*result["tasks"].values(), *result["levels"].values()]
    assert not any(row["significant"] for row in rows)
    same = table5(base, base, permutations=2000, resamples=200)  # literally the same labels
    assert all(row["p_value"] == 1.0 for row in same["tasks"].values() if row["testable"])


def test_holm_is_applied_across_every_row():
    rng = np.random.default_rng(3)
    result = table5(planted_rows(rng, 6, 20, 0.3), planted_rows(rng, 6, 20, 0.5), permutations=2000, resamples=200)
    rows = [*result["tasks"].values(), *result["levels"].values(), result["nameable_share"]]
    tested = [r for r in rows if r["testable"]]
    assert [r["p_adjusted"] for r in tested] == pytest.approx(holm([r["p_value"] for r in tested]))
    assert all(
        r["p_adjusted"] is None and r["p_value"] is None and not r["significant"] for r in rows if not r["testable"]
    )
    assert [f.p_adjusted for f in result["finding"] if f.testable] == [r["p_adjusted"] for r in tested]


def test_too_few_components_or_no_variance_is_not_testable():
    base = [label(0, c, tasks=["coding"] if c < 2 else []) for c in range(4)]  # 4 nameable components
    tuned = [label(0, c, tasks=["coding"] if c < 3 else []) for c in range(8)]
    result = table5(base, tuned)
    coding = result["tasks"]["coding"]
    assert not coding["testable"] and coding["reason"] == "side 1: n = 4 < 5"
    assert coding["p_value"] is None and coding["p_adjusted"] is None and coding["significant"] is False
    assert (coding["base"]["count"], coding["base"]["n"]) == (2, 4)  # the counts are still shown
    math = table5([label(0, c) for c in range(6)], tuned)["tasks"]["math"]
    assert math["reason"] == "side 1: zero variance (all 0); side 2: zero variance (all 0)"


def test_annotation_runs_are_not_the_sample_under_the_sound_protocol():
    """Five noisy re-annotations of the same four components: the paper tests them, sound refuses."""
    rng = np.random.default_rng(5)

    def runs(p):
        return [label(0, c, run, tasks=["coding"] if rng.random() < p else []) for c in range(4) for run in range(5)]

    base, tuned = runs(0.3), runs(0.7)
    sound = table5(base, tuned)["tasks"]["coding"]
    assert not sound["testable"] and "n = 4 < 5" in sound["reason"]
    paper = table5(base, tuned, "paper")["tasks"]["coding"]
    b = run_units(base, "tasks", TASKS).values[:, TASKS.index("coding")]
    t = run_units(tuned, "tasks", TASKS).values[:, TASKS.index("coding")]
    assert paper["testable"] and paper["p_value"] == pytest.approx(stats.ttest_ind(t, b, equal_var=True).pvalue)
    assert paper["base"]["std"] == pytest.approx(np.std(b, ddof=0)) and paper["base"]["units"] == 5
    pooled = (4 * b.var(ddof=1) + 4 * t.var(ddof=1)) / 8
    half = stats.t.ppf(0.975, 8) * np.sqrt(pooled * 2 / 5)
    assert paper["ci"] == pytest.approx([t.mean() - b.mean() - half, t.mean() - b.mean() + half])
    assert (paper["base"]["count"], paper["base"]["n"]) == (b.sum() * 4, 20)  # labels summed over runs


def test_a_single_run_is_never_tested_under_the_paper_protocol():
    rng = np.random.default_rng(6)
    result = table5(planted_rows(rng, 4, 30, 0.2), planted_rows(rng, 4, 30, 0.8), "paper")
    rows = [*result["tasks"].values(), *result["levels"].values(), result["nameable_share"]]
    assert all(not r["testable"] and r["reason"].startswith("side 1: n = 1 < 5") for r in rows)
    assert all(f.p_value is None and not f.significant for f in result["finding"])


def test_layer_groups_by_protocol():
    assert layer_groups(10, "paper") == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]
    assert [g[0] for g in layer_groups(30, "sound")] == [0, 4, 8, 12, 15, 19, 23, 27]
    assert layer_groups(4, "sound") == [[0], [1], [2], [3]]
    rows = [label(layer, 0, tasks=["coding"] if layer < 4 else []) for layer in range(8)]
    groups = per_layer_group(rows, rows, 8, "paper")
    assert [g["layers"] for g in groups] == [[0, 3], [4, 7]]
    assert groups[0]["tasks"]["coding"] == {
        "base": 1.0,
        "tuned": 1.0,
        "base_count": 4,
        "base_n": 4,
        "tuned_count": 4,
        "tuned_n": 4,
    }
    assert groups[1]["tasks"]["coding"]["base"] == 0.0
