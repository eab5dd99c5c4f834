"""Pure tensor core of the FFN method: PCA of a layer's neuron output vectors and their vocabulary reading.

The PCA diagonalises the hidden × hidden covariance in float64 instead of taking a full SVD of the
intermediate × hidden matrix: the same principal axes, a smaller problem. Signs are fixed so that each
component's largest-|score| vocabulary word scores positive (see `fix_signs`).
"""

from __future__ import annotations

from dataclasses import dataclass

import scipy.linalg
import scipy.linalg.blas
import torch


@dataclass
class LayerPCA:
    """The first principal components of one layer: rows of ``components`` are unit vectors (R × hidden)."""

    components: torch.Tensor
    explained_variance: torch.Tensor
    explained_variance_ratio: torch.Tensor


def _scatter_eigh(rows: torch.Tensor, n_components: int) -> tuple[torch.Tensor, torch.Tensor]:
    """All eigenvalues (descending) of the centred scatter matrix Xcᵀ Xc and its top eigenvectors (rows).

    Float64 throughout. On CPU the scatter is one symmetric rank-k update (BLAS syrk, half the work of
    a matmul) and the eigenproblem LAPACK's divide and conquer (syevd) via SciPy; on a GPU both run in
    torch there.
    """
    if rows.device.type == "cpu":
        x = rows.to(torch.float64).numpy()
        x = x - x.mean(axis=0)  # a new array: the caller's float64 rows are never changed
        scatter = scipy.linalg.blas.dsyrk(1.0, x.T, trans=0, lower=0)  # upper triangle; x.T is F-ordered
        values, vectors = scipy.linalg.eigh(scatter, lower=False, driver="evd", check_finite=False, overwrite_a=True)
        top = vectors[:, : -n_components - 1 : -1].T.copy()  # a copy: one row keeps a negative stride otherwise
        return torch.from_numpy(values[::-1].copy()), torch.from_numpy(top)
    x = rows.to(torch.float64)
    x = x - x.mean(dim=0, keepdim=True)
    values, vectors = torch.linalg.eigh(x.T @ x)
    return values.flip(0), vectors.flip(1)[:, :n_components].T.contiguous()


def principal_components(rows: torch.Tensor, n_components: int) -> LayerPCA:
    """PCA of ``rows`` (samples × features, column-centred here) keeping ``n_components`` components.

    Explained variance uses the n − 1 denominator; ratios are over the total variance (the trace).
    Components are float64 unit rows, signs as LAPACK returns them (fix them with `fix_signs`). More
    components than features is an error, never a silent cap (see `shiftlens.ffn.sizing`).
    """
    if rows.ndim != 2 or rows.shape[0] < 2:
        raise ValueError(f"need a 2-D matrix with at least two rows, got shape {tuple(rows.shape)}")
    if not 1 <= n_components <= rows.shape[1]:
        raise ValueError(f"need 1 to {rows.shape[1]} components for {rows.shape[1]} features, got {n_components}")
    values, components = _scatter_eigh(rows.detach(), n_components)
    values = values.clamp_min(0.0)
    variance = values / (rows.shape[0] - 1)
    return LayerPCA(
        components=components,
        explained_variance=variance[:n_components],
        explained_variance_ratio=(values / values.sum())[:n_components],
    )


def vocabulary_scores(components: torch.Tensor, word_vectors: torch.Tensor) -> torch.Tensor:
    """Cosine-style scores (components × words): each component against each L2-normalised word vector.

    Computed in float32 (ample for ranking words; a float64 product over a 26k-word vocabulary costs
    more than the PCA itself).
    """
    unit = torch.nn.functional.normalize(word_vectors.float(), dim=1)
    return components.float() @ unit.T


def fix_signs(components: torch.Tensor, scores: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The sign rule: flip each component (and its scores) so its largest-|score| word scores positive.

    A principal axis has no intrinsic sign; this makes the word the component writes most strongly
    a positive score, so the reported lists read the same way for every layer and model.
    """
    strongest = scores.abs().argmax(dim=1, keepdim=True)
    signs = torch.where(scores.gather(1, strongest) < 0, -1.0, 1.0).to(scores.dtype)
    return components * signs.to(components.dtype), scores * signs


def top_words(scores: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Indices and scores of each component's ``k`` words with the largest |score| (by |score| descending)."""
    k = min(k, scores.shape[1])
    order = scores.abs().topk(k, dim=1).indices
    return order, scores.gather(1, order)


@dataclass
class LayerConcepts:
    """One layer's explained components: PCA result with signs fixed, plus the top words per component."""

    pca: LayerPCA
    top_indices: torch.Tensor
    top_scores: torch.Tensor


def explain_layer(rows: torch.Tensor, word_vectors: torch.Tensor, n_components: int, k: int) -> LayerConcepts:
    """PCA of a layer's neuron output vectors, each component read as its top-``k`` vocabulary words."""
    pca = principal_components(rows, n_components)
    scores = vocabulary_scores(pca.components, word_vectors.to(pca.components.device))
    pca.components, scores = fix_signs(pca.components, scores)
    indices, top = top_words(scores, k)
    return LayerConcepts(pca, indices, top)
