"""Null baselines of the instruction score: placements, contrast, position and the randomization test."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from shiftlens.attribution import nulls
from shiftlens.density import instruction_score


def mask_of(n, *ranges):
    mask = np.zeros(n, dtype=bool)
    for start, end in ranges:
        mask[start:end] = True
    return mask


def test_control_spans_have_the_instructions_length_and_shape_everywhere_else():
    mask = mask_of(20, (2, 5), (9, 11))  # two pieces, 5 tokens
    rows = nulls.placements(mask)
    assert rows.shape == (20, 20) and set(rows.sum(axis=1)) == {5}
    assert np.array_equal(rows[0], mask)
    for shift, row in enumerate(rows):
        assert np.array_equal(row, np.roll(mask, shift))
    np.testing.assert_array_equal(rows.sum(axis=0), np.full(20, 5))  # every token in as many placements
    one = nulls.random_placement(mask, nulls.example_rng(0, "x"))
    assert one.sum() == 5 and np.array_equal(one, nulls.random_placement(mask, nulls.example_rng(0, "x")))


def test_span_scores_equal_the_instruction_score():
    rng = np.random.default_rng(2)
    density = rng.random(15)
    rows = nulls.placements(mask_of(15, (3, 7)))
    np.testing.assert_allclose(nulls.span_scores(density, rows), [instruction_score(density, m) for m in rows])
    assert nulls.span_scores(np.zeros(15), rows).tolist() == [0.0] * 15


def test_contrast_and_position_by_hand():
    density = np.array([4.0, 2.0, 1.0, 1.0])
    assert nulls.contrast(density, mask_of(4, (0, 2))) == pytest.approx((1.0 + 0.5) / 2 - (0.25 + 0.25) / 2)
    assert nulls.contrast(np.zeros(4), mask_of(4, (0, 2))) == 0.0
    # centre (mean of (n + 1/2) / N): tokens 0-2 of 12 -> 0.125; 4-7 -> 0.5; 9-11 -> 0.875; 0-1 and 10-11 -> 0.5
    assert [nulls.position(mask_of(12, r)) for r in [(0, 3), (4, 8), (9, 12)]] == ["start", "middle", "end"]
    assert nulls.position(mask_of(12, (0, 2), (10, 12))) == "middle"
    assert nulls.has_control(mask_of(4, (0, 2))) and not nulls.has_control(mask_of(4, (0, 4)))
    assert not nulls.has_control(mask_of(4))


def test_null_stats_of_one_example():
    rng = np.random.default_rng(4)
    base, tuned = rng.random(24), rng.random(24)
    mask = mask_of(24, (18, 24))
    stats = nulls.null_stats("ex", "g", (base, tuned), mask)
    assert stats.position == "end"
    assert stats.score == (pytest.approx(instruction_score(base, mask)), pytest.approx(instruction_score(tuned, mask)))
    others = [np.roll(mask, s) for s in range(1, 24)]
    expected = np.mean([instruction_score(tuned, m) - instruction_score(base, m) for m in others])
    assert stats.control_gain == pytest.approx(expected)
    assert stats.contrast == (pytest.approx(nulls.contrast(base, mask)), pytest.approx(nulls.contrast(tuned, mask)))
    matched = [s for s in range(24) if nulls.position(np.roll(mask, s)) == "end"]
    gains = [instruction_score(tuned, np.roll(mask, s)) - instruction_score(base, np.roll(mask, s)) for s in matched]
    np.testing.assert_allclose(stats.matched(), gains)  # the instruction (shift 0) first


def literal_placement_p(sets):
    """Every combination of one placement per example: share with |mean excess| at least the observed."""

    def excess(g, k):
        return g[k] - (sum(g) - g[k]) / (len(g) - 1)

    observed = abs(np.mean([excess(g, 0) for g in sets]))
    picks = itertools.product(*(range(len(g)) for g in sets))
    null = [abs(np.mean([excess(g, k) for g, k in zip(sets, pick)])) for pick in picks]
    return np.mean([x >= observed - 1e-12 for x in null])


def test_placement_p_matches_exact_enumeration():
    rng = np.random.default_rng(0)
    sets = [rng.normal(size=k) + np.eye(k)[0] * 0.8 for k in (4, 5, 3, 6, 4, 5)]
    exact = literal_placement_p(sets)
    tolerance = 4 * np.sqrt(exact * (1 - exact) / 9999) + 1e-4
    assert nulls.placement_p(sets) == pytest.approx(exact, abs=tolerance)
    assert nulls.placement_p(sets, seed=1) == nulls.placement_p(sets, seed=1)
    assert np.isnan(nulls.placement_p([]))


def test_placement_test_is_calibrated_for_random_placements():
    """Random spans in place of the instruction: p < 0.05 in about 5 % of draws, whatever the position effect."""
    rng = np.random.default_rng(7)
    n, examples = 16, 30
    profile = np.linspace(2.0, 0.0, n)  # tuned gains most at the start of every prompt
    hits = 0
    for _ in range(200):
        sets = []
        for _ in range(examples):
            gains = nulls.span_scores(rng.random(n) + profile, nulls.placements(mask_of(n, (0, 4))))
            gains -= nulls.span_scores(rng.random(n), nulls.placements(mask_of(n, (0, 4))))
            start = rng.integers(0, n)  # the random "instruction" is placement `start`
            sets.append(np.roll(gains, -start))
        hits += nulls.placement_p(sets, permutations=999) < 0.05
    assert hits / 200 < 0.1
