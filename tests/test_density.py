"""The paper's post-processing on matrices computed by hand."""

from __future__ import annotations

import numpy as np
import pytest

from shiftlens.density import DensityParams, importance_density, instruction_score, is_scaled, scale_columns


def test_scale_columns_by_hand() -> None:
    raw = np.array([[1.0, -2.0], [0.5, 4.0], [0.95, 3.1], [-1.0, 0.0]])
    # column 0: max 1.0 -> ceil(10*[1, .5, .95, 0]) = [10, 5, 10, 0] -> entries <= 7 zeroed
    # column 1: max 4.0 -> ceil(10*[0, 1, .775, 0]) = [0, 10, 8, 0]
    expected = np.array([[10.0, 0.0], [0.0, 10.0], [10.0, 8.0], [0.0, 0.0]])
    np.testing.assert_array_equal(scale_columns(raw), expected)


def test_density_and_score_by_hand() -> None:
    raw = np.array([[1.0, -2.0], [0.5, 4.0], [0.95, 3.1], [-1.0, 0.0]])
    density = importance_density(raw)
    # rows of the scaled matrix: [10,0], [0,10], [10,8], [0,0]
    expected = np.array([10 / 10, 10 / 10, 18 / (10**4 + 8**4) ** 0.25, 0.0])
    np.testing.assert_allclose(density, expected)
    mask = np.array([False, True, True, False])
    score = instruction_score(density, mask)
    peak = density.max()
    assert score == pytest.approx((expected[1] / peak + expected[2] / peak) / np.log2(4))


def test_already_scaled_matrices_skip_the_rescaling_but_not_the_threshold() -> None:
    released = np.array([[0, 10, 9], [8, 0, 10], [10, 3, 0]])
    assert is_scaled(released)
    # not rescaled (column 1 has max 10 already; 3 -> 0 by b = 7, not ceil(3/10*10) kept)
    np.testing.assert_array_equal(scale_columns(released), [[0, 10, 9], [8, 0, 10], [10, 0, 0]])
    # a column whose max is below L is not stretched to L: 6 and 5 stay below b and vanish, 8 stays 8
    np.testing.assert_array_equal(scale_columns(np.array([[6], [5], [8]])).ravel(), [0, 0, 8])
    np.testing.assert_array_equal(scale_columns(released, DensityParams(threshold=0)), released)
    assert not is_scaled(released * 0.5)


def test_density_of_a_released_matrix_is_thresholded() -> None:
    released = np.array([[10.0, 7.0], [7.0, 7.0], [8.0, 1.0]])
    # after b = 7: rows [10, 0], [0, 0], [8, 0] -> densities 1, 0, 1
    np.testing.assert_allclose(importance_density(released), [1.0, 0.0, 1.0])


def test_other_parameters_change_the_result() -> None:
    raw = np.array([[1.0], [0.55], [0.2]])
    np.testing.assert_array_equal(scale_columns(raw, DensityParams(levels=10, threshold=5)).ravel(), [10, 6, 0])
    np.testing.assert_array_equal(scale_columns(raw, DensityParams(levels=4, threshold=0)).ravel(), [4, 3, 1])


def test_degenerate_inputs() -> None:
    assert instruction_score(np.zeros(3), np.array([True, False, False])) == 0.0
    assert instruction_score(np.ones(3), np.zeros(3, bool)) == 0.0
    with pytest.raises(ValueError, match="mask"):
        instruction_score(np.ones(3), np.ones(2, bool))
    with pytest.raises(ValueError, match="invalid density parameters"):
        DensityParams(levels=10, threshold=10)
