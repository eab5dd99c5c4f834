"""Tensor-level attention-head explainer: word pairs read off W_q and W_k, all dimensions at once.

For head h and dimension j, H_q = E·W_q,hᵀ and H_k = E·W_k,hᵀ project every word vector; a dimension's
energy is Σ_words (H_q² + H_k²). Its candidate queries and keys are the top-K words by |H_q| and |H_k|;
a candidate pair (q, k) is kept when q ≠ k, H_q[q]·H_k[k] > 0 and, with co-occurrence vectors, when
cos(q, k) exceeds both words' thresholds θ(w) = mean + z·std of cos(w, r) over reference words r.
Exact ties in |H| at the K-th place go to the lower word index, as in the reference's stable sort.
Pairs are ordered by similarity (by the score H_q·H_k without co-occurrence vectors), then by word index.
RoPE is ignored, as in the paper. Computation is float64 so that it matches the literal reference;
similarities are rounded to float32 precision so that symmetric pairs tie exactly in both.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch


@dataclass
class PairFilter:
    """Unit co-occurrence vectors (words × c) and per-word thresholds (+inf: word cannot pair)."""

    vectors: torch.Tensor
    thresholds: torch.Tensor


@dataclass
class HeadPairs:
    """Explanation of a layer's heads: per-dimension energy and rank, and the kept pairs (one per row).

    ``energy`` and ``rank`` are (heads × head_dim); rank 0 is the head's most energetic dimension.
    Pair arrays are aligned, sorted by head, dimension, then their order within the dimension.
    """

    energy: np.ndarray
    rank: np.ndarray
    pair_head: np.ndarray
    pair_dim: np.ndarray
    pair_query: np.ndarray
    pair_key: np.ndarray
    pair_similarity: np.ndarray  # NaN without co-occurrence vectors
    pair_score: np.ndarray  # H_q[q] · H_k[k]

    def arrays(self) -> dict[str, np.ndarray]:
        """The fields as a name → array dict (for storage)."""
        return dict(vars(self))


def word_thresholds(
    vectors: torch.Tensor, present: torch.Tensor, reference: torch.Tensor, z: float = 1.96, chunk: int = 4096
) -> torch.Tensor:
    """θ(w) = mean + z·std (population) of cos(w, r) over the reference words r that have a vector.

    Words without a vector get +inf, so no similarity can pass their threshold.
    """
    reference = reference[present[reference]]
    ref_vectors = vectors[reference].double()
    thresholds = torch.full((len(vectors),), float("inf"), dtype=torch.float64, device=vectors.device)
    if len(reference) == 0:
        return thresholds
    for start in range(0, len(vectors), chunk):
        sims = vectors[start : start + chunk].double() @ ref_vectors.T
        std, mean = torch.std_mean(sims, dim=1, correction=0)
        thresholds[start : start + chunk] = mean + z * std
    thresholds[~present] = float("inf")
    return thresholds


def filter_pairs(pair_filter: PairFilter, query: torch.Tensor, key: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The filter's rule for every query × key word of a batch (query: B × A, key: B × C indices → B × A × C).

    The similarity cos(q, k), and whether the filter admits the pair: the similarity exceeds both words'
    thresholds. The one place the rule is written, so that whoever asks what the method admits gets its answer.
    """
    sim = torch.bmm(pair_filter.vectors[query], pair_filter.vectors[key].transpose(1, 2))
    sim = sim.float().double()  # float32 grid: cos(a, b) and cos(b, a) tie exactly despite GEMM rounding
    theta = pair_filter.thresholds
    return sim, (sim > theta[query][:, :, None]) & (sim > theta[key][:, None, :])


def dimension_ranks(energy: np.ndarray) -> np.ndarray:
    """Rank of each dimension within its head by decreasing energy (ties by dimension index)."""
    order = np.argsort(-energy, axis=1, kind="stable")
    ranks = np.empty_like(order)
    np.put_along_axis(ranks, order, np.arange(energy.shape[1])[None, :].repeat(len(energy), 0), axis=1)
    return ranks


def top_k_rows(values: torch.Tensor, k: int) -> torch.Tensor:
    """Row indices (k × columns) of each column's k largest values; exact ties go to the lower row index.

    This is the set a stable descending sort would take (the literal reference), where ``torch.topk``
    leaves the choice among values tied at the K-th place unspecified. Only the columns whose (K+1)-th
    value equals the K-th are re-selected, so the common case costs one `torch.topk`. The order within
    a column is unspecified.
    """
    if k >= len(values):
        return values.topk(k, dim=0).indices
    top = values.topk(k + 1, dim=0)
    indices = top.indices[:k]
    ambiguous = (top.values[k] == top.values[k - 1]).nonzero()[:, 0]
    if len(ambiguous):
        sub, kth = values[:, ambiguous], top.values[k - 1, ambiguous]
        above, tied = sub > kth, sub == kth
        take = above | (tied & (tied.cumsum(0) <= k - above.sum(0)))
        indices = indices.clone()
        indices[:, ambiguous] = take.T.nonzero()[:, 1].reshape(-1, k).T
    return indices


def _candidate_pairs(
    words: torch.Tensor, wq: torch.Tensor, wk: torch.Tensor, top_k: int, pair_filter: PairFilter | None
) -> tuple[torch.Tensor, ...]:
    """Energy and kept (dim, query, key, similarity, score) of a block of dimensions (D × hidden)."""
    hq, hk = words @ wq.T, words @ wk.T  # (V, D)
    energy = (hq**2).sum(0) + (hk**2).sum(0)
    k = min(top_k, len(words))
    qi = top_k_rows(hq.abs(), k)  # (K, D)
    ki = top_k_rows(hk.abs(), k)
    score = hq.gather(0, qi).T[:, :, None] * hk.gather(0, ki).T[:, None, :]  # (D, K, K)
    qi, ki = qi.T, ki.T
    keep = (score > 0) & (qi[:, :, None] != ki[:, None, :])
    if pair_filter is None:
        sim = torch.full_like(score, float("nan"))
    else:
        sim, admitted = filter_pairs(pair_filter, qi, ki)
        keep &= admitted
    dim, a, b = keep.nonzero(as_tuple=True)
    return energy, dim, qi[dim, a], ki[dim, b], sim[dim, a, b], score[dim, a, b]


def order_pairs(
    dim: np.ndarray,
    query: np.ndarray,
    key: np.ndarray,
    similarity: np.ndarray,
    score: np.ndarray,
    max_pairs: int | None,
) -> np.ndarray:
    """Row order of pairs: by dimension, then similarity (score when NaN) descending, then word indices.

    With ``max_pairs`` only the first that many pairs of each dimension are kept.
    """
    strength = np.where(np.isnan(similarity), score, similarity)
    order = np.lexsort((key, query, -strength, dim))
    if max_pairs is not None and len(order):
        sorted_dim = dim[order]
        starts = np.r_[0, np.flatnonzero(np.diff(sorted_dim)) + 1]
        first = np.repeat(starts, np.diff(np.r_[starts, len(order)]))
        order = order[np.arange(len(order)) - first < max_pairs]
    return order


def explain_layer(
    words: torch.Tensor,
    wq: torch.Tensor,
    wk: torch.Tensor,
    top_k: int = 100,
    pair_filter: PairFilter | None = None,
    max_pairs: int | None = None,
    dims_per_block: int = 1024,
) -> HeadPairs:
    """Explain every head of a layer: ``words`` (V × hidden), ``wq``/``wk`` (heads × head_dim × hidden).

    Dimensions are processed in blocks of ``dims_per_block`` to bound memory on large models.
    """
    n_heads, head_dim, hidden = wq.shape
    words = words.double()
    flat_q, flat_k = wq.reshape(-1, hidden).to(words), wk.reshape(-1, hidden).to(words)
    if pair_filter is not None:
        pair_filter = PairFilter(pair_filter.vectors.to(words), pair_filter.thresholds.to(words))
    parts: list[list[np.ndarray]] = []
    energies = []
    for start in range(0, n_heads * head_dim, dims_per_block):
        stop = start + dims_per_block
        energy, *pairs = _candidate_pairs(words, flat_q[start:stop], flat_k[start:stop], top_k, pair_filter)
        energies.append(energy.cpu().numpy())
        pairs[0] = pairs[0] + start
        parts.append([p.cpu().numpy() for p in pairs])
    dim, query, key, similarity, score = (np.concatenate(column) for column in zip(*parts))
    order = order_pairs(dim, query, key, similarity, score, max_pairs)
    energy = np.concatenate(energies).reshape(n_heads, head_dim)
    dim = dim[order]
    return HeadPairs(
        energy=energy,
        rank=dimension_ranks(energy),
        pair_head=dim // head_dim,
        pair_dim=dim % head_dim,
        pair_query=query[order],
        pair_key=key[order],
        pair_similarity=similarity[order],
        pair_score=score[order],
    )
