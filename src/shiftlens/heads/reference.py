"""Literal per-dimension reference of the head explainer, written straight from the method's description.

Loops over heads, dimensions and candidate pairs one at a time; slow, and used only by tests and the
benchmark to check that the vectorised `shiftlens.heads.core.explain_layer` gives the same output.
"""

from __future__ import annotations

import numpy as np
import torch

from shiftlens.heads.core import HeadPairs, dimension_ranks


class _Thresholds:
    """θ(w) = mean + z·std of cos(w, r) over reference words, computed per word when first needed."""

    def __init__(self, vectors: np.ndarray, present: np.ndarray, reference: list[int], z: float) -> None:
        self.vectors, self.present, self.z = vectors, present, z
        self.reference = [r for r in reference if present[r]]
        self.cache: dict[int, float] = {}

    def __call__(self, word: int) -> float:
        if word not in self.cache:
            if not self.present[word] or not self.reference:
                self.cache[word] = float("inf")
            else:
                sims = np.array([self.vectors[word] @ self.vectors[r] for r in self.reference])
                self.cache[word] = float(sims.mean() + self.z * sims.std())
        return self.cache[word]


def reference_explain_layer(
    words: torch.Tensor,
    wq: torch.Tensor,
    wk: torch.Tensor,
    top_k: int = 100,
    cooccurrence: tuple[torch.Tensor, torch.Tensor] | None = None,
    reference_words: list[int] | None = None,
    z: float = 1.96,
    max_pairs: int | None = None,
    heads: list[int] | None = None,
) -> HeadPairs:
    """The same output as `explain_layer`, for ``heads`` (default all), one dimension and pair at a time.

    ``cooccurrence`` is (unit vectors, present mask); thresholds use ``reference_words`` (word indices).
    """
    n_heads, head_dim, _ = wq.shape
    heads = list(range(n_heads)) if heads is None else heads
    emb = words.double().numpy()
    theta = None
    if cooccurrence is not None:
        vectors, present = cooccurrence[0].double().numpy(), cooccurrence[1].numpy()
        theta = _Thresholds(vectors, present, reference_words or [], z)
    energy = np.zeros((len(heads), head_dim))
    rows: list[tuple[int, int, int, int, float, float]] = []
    for hi, h in enumerate(heads):
        for j in range(head_dim):
            hq = emb @ wq[h, j].double().numpy()
            hk = emb @ wk[h, j].double().numpy()
            energy[hi, j] = np.sum(hq**2) + np.sum(hk**2)
            top_q = np.argsort(-np.abs(hq), kind="stable")[:top_k]
            top_keys = np.argsort(-np.abs(hk), kind="stable")[:top_k]
            pairs = []
            for q in top_q:
                for k in top_keys:
                    score = hq[q] * hk[k]
                    if q == k or score <= 0:
                        continue
                    sim = float("nan")
                    if theta is not None:
                        sim = float(np.float32(vectors[q] @ vectors[k]))
                        if not (sim > theta(q) and sim > theta(k)):
                            continue
                    pairs.append((sim if theta is not None else score, int(q), int(k), sim, score))
            pairs.sort(key=lambda p: (-p[0], p[1], p[2]))
            rows += [(hi, j, q, k, sim, score) for _, q, k, sim, score in pairs[:max_pairs]]
    columns = list(zip(*rows)) if rows else [[]] * 6
    return HeadPairs(
        energy=energy,
        rank=dimension_ranks(energy),
        pair_head=np.array(columns[0], dtype=np.int64),
        pair_dim=np.array(columns[1], dtype=np.int64),
        pair_query=np.array(columns[2], dtype=np.int64),
        pair_key=np.array(columns[3], dtype=np.int64),
        pair_similarity=np.array(columns[4], dtype=np.float64),
        pair_score=np.array(columns[5], dtype=np.float64),
    )
