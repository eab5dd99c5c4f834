"""The FFN core against numpy and literal formulas: PCA, variance ratios, sign rule, vocabulary scores."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from shiftlens.ffn.core import explain_layer, fix_signs, principal_components, top_words, vocabulary_scores


def planted(n: int, h: int, singular: np.ndarray, seed: int = 0) -> np.ndarray:
    """An n × h matrix with the given singular values (after centring), a random offset added."""
    rng = np.random.default_rng(seed)
    u, _ = np.linalg.qr(rng.standard_normal((n, h)))
    u -= u.mean(axis=0)  # centred left vectors keep the planted spectrum after column centring
    u, _ = np.linalg.qr(u)
    v, _ = np.linalg.qr(rng.standard_normal((h, h)))
    return (u * singular) @ v.T + rng.standard_normal(h) * 3.0


def numpy_pca(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Reference: full SVD of the column-centred matrix (rows of vh, variance ratios)."""
    centred = x - x.mean(axis=0)
    _, s, vh = np.linalg.svd(centred, full_matrices=False)
    return vh, s**2 / (s**2).sum()


@pytest.mark.parametrize("shape", [(200, 24), (40, 64), (300, 48)])
def test_pca_matches_numpy_full_svd(shape):
    x = np.random.default_rng(1).standard_normal(shape) @ np.diag(np.linspace(3, 0.1, shape[1]))
    ref_vh, ref_ratio = numpy_pca(x)
    r = min(shape) - 1
    pca = principal_components(torch.from_numpy(x), r)
    assert pca.components.shape == (r, shape[1])
    np.testing.assert_allclose(pca.explained_variance_ratio.numpy(), ref_ratio[:r], rtol=1e-9, atol=1e-12)
    cos = np.abs((pca.components.numpy() * ref_vh[:r]).sum(axis=1))
    assert cos.min() >= 0.9999
    np.testing.assert_allclose(pca.components.numpy() @ pca.components.numpy().T, np.eye(r), atol=1e-10)


@pytest.mark.parametrize("n_components", [1, 2])
def test_few_components_equal_the_first_of_many(n_components: int) -> None:
    """One component once came back with a negative stride (a one-row view), which torch refused."""
    x = torch.from_numpy(planted(60, 12, np.linspace(6, 1, 12)))
    few, many = principal_components(x, n_components), principal_components(x, 6)
    np.testing.assert_allclose(few.components.numpy(), many.components[:n_components].numpy(), atol=1e-10)
    np.testing.assert_allclose(few.explained_variance.numpy(), many.explained_variance[:n_components].numpy())


def test_explained_variance_is_the_variance_of_the_projections():
    x = planted(120, 16, np.linspace(10, 1, 16))
    pca = principal_components(torch.from_numpy(x), 5)
    projections = (x - x.mean(axis=0)) @ pca.components.numpy().T
    np.testing.assert_allclose(pca.explained_variance.numpy(), projections.var(axis=0, ddof=1), rtol=1e-9)
    total = x.var(axis=0, ddof=1).sum()
    np.testing.assert_allclose(pca.explained_variance_ratio.numpy(), projections.var(axis=0, ddof=1) / total)


def test_near_degenerate_pair_keeps_its_subspace():
    """Two almost equal eigenvalues: each vector alone is ill-defined, their plane is not."""
    singular = np.array([9.0, 7.0, 5.0, 5.0 * (1 + 1e-9), 3.0, 2.0, 1.0, 0.5])
    x = planted(100, 8, singular, seed=3)
    ref_vh, _ = numpy_pca(x)
    comps = principal_components(torch.from_numpy(x), 6).components.numpy()
    separated = [0, 1, 4, 5]
    assert np.abs((comps[separated] * ref_vh[separated]).sum(axis=1)).min() >= 0.9999
    pair_cos = np.linalg.svd(comps[2:4] @ ref_vh[2:4].T, compute_uv=False)  # principal angles' cosines
    assert pair_cos.min() >= 0.9999


def test_float32_input_still_agrees_with_float64_svd():
    x = planted(1536, 64, np.geomspace(50, 0.5, 64), seed=5).astype(np.float32)
    ref_vh, _ = numpy_pca(x.astype(np.float64))
    comps = principal_components(torch.from_numpy(x), 40).components.numpy()
    assert np.abs((comps * ref_vh[:40]).sum(axis=1)).min() >= 0.9999


def test_vocabulary_scores_literal():
    torch.manual_seed(0)
    comps, words = torch.randn(3, 5, dtype=torch.float64), torch.randn(7, 5, dtype=torch.float64)
    scores = vocabulary_scores(comps, words)
    for i in range(3):
        for j in range(7):
            expected = sum(comps[i, d] * words[j, d] for d in range(5)) / torch.sqrt(
                sum(words[j, d] ** 2 for d in range(5))
            )
            assert scores[i, j].item() == pytest.approx(expected.item(), rel=1e-5, abs=1e-6)


def test_sign_rule_makes_the_strongest_word_positive():
    comps = torch.eye(2, dtype=torch.float64)
    scores = torch.tensor([[0.1, -0.9, 0.5], [0.3, 0.2, -0.1]], dtype=torch.float64)
    fixed_comps, fixed_scores = fix_signs(comps, scores)
    assert fixed_scores.tolist() == [[-0.1, 0.9, -0.5], [0.3, 0.2, -0.1]]
    assert fixed_comps.tolist() == [[-1.0, 0.0], [0.0, 1.0]]


def test_top_words_by_absolute_score():
    scores = torch.tensor([[0.1, -0.9, 0.5, 0.0]])
    indices, values = top_words(scores, 3)
    assert indices.tolist() == [[1, 2, 0]]
    assert values[0].tolist() == pytest.approx([-0.9, 0.5, 0.1])
    assert top_words(scores, 10)[0].shape == (1, 4)


def test_planted_word_direction_is_found_with_positive_sign():
    """Neurons writing ± a word's direction (plus noise): the first component reads as that word."""
    rng = np.random.default_rng(7)
    words = torch.from_numpy(rng.standard_normal((50, 32)))
    direction = words[17] / words[17].norm()
    coefficients = torch.from_numpy(rng.standard_normal((400, 1)) * 10)
    rows = coefficients * direction + torch.from_numpy(rng.standard_normal((400, 32)) * 0.1)
    for sign in (1.0, -1.0):
        result = explain_layer(sign * rows, words, n_components=4, k=5)
        assert result.top_indices[0, 0].item() == 17
        assert result.top_scores[0, 0].item() > 0.99
        assert (result.top_scores[:, 0] > 0).all()


def test_input_dtypes_and_rows_left_untouched():
    x = torch.from_numpy(planted(60, 8, np.linspace(5, 1, 8)))
    copy = x.clone()
    reference = principal_components(x, 3).components
    assert torch.equal(x, copy)
    low = principal_components(x.bfloat16(), 3).components
    assert (low * reference).sum(1).abs().min() > 0.99  # bfloat16 rounding only


def test_bad_input_and_too_many_components():
    with pytest.raises(ValueError, match="at least two rows"):
        principal_components(torch.zeros(1, 4), 2)
    with pytest.raises(ValueError, match="need 1 to 4 components for 4 features, got 300"):
        principal_components(torch.randn(10, 4), 300)  # refused, never capped to the 4 there are
    with pytest.raises(ValueError, match="got 0"):
        principal_components(torch.randn(10, 4), 0)
    assert principal_components(torch.randn(10, 4), 4).components.shape == (4, 4)
