"""Positive control of the heads method: planted (query, key) word pairs recovered, as a curve over strength.

Recall: the share of planted pairs the method keeps in their dimension. Precision: the share of planted
pairs among the dimension's strongest kept pairs by score H_q·H_k (as many as were planted there), i.e.
whether what the dimension writes most strongly is what was planted (the method's listed order is by
co-occurrence similarity, which says nothing about the weights). Strength 0 is the null: the same
pairs scored on the unedited weights (chance recall).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np
import torch

from shiftlens.heads.core import HeadPairs, PairFilter, explain_layer
from shiftlens.validation.surgery import PlantedPairs, plant_head_pairs


@dataclass(frozen=True)
class HeadRecovery:
    """Recall and precision of the planted pairs at one strength (× each edited row's norm)."""

    strength: float
    recall: float
    precision: float

    def to_json(self) -> dict[str, float]:
        """A JSON-safe dict."""
        return asdict(self)


def admitted(query: int, pair_filter: PairFilter | None, n_words: int) -> np.ndarray:
    """Words the co-occurrence filter lets pair with ``query`` (every other word without a filter)."""
    if pair_filter is None:
        return np.setdiff1d(np.arange(n_words), [query])
    sims = (pair_filter.vectors.double() @ pair_filter.vectors[query].double()).cpu()
    theta = pair_filter.thresholds.cpu()
    ok = (sims > theta) & (sims > theta[query])
    ok[query] = False
    return ok.nonzero()[:, 0].numpy()


def choose_plants(
    n_words: int,
    n_heads: int,
    head_dim: int,
    n_plants: int,
    n_keys: int,
    seed: int = 0,
    pair_filter: PairFilter | None = None,
) -> list[PlantedPairs]:
    """``n_plants`` distinct (head, dim) each with a random query and ``n_keys`` keys the filter admits."""
    rng = np.random.default_rng(seed)
    slots = rng.choice(n_heads * head_dim, size=n_plants, replace=False)
    plants = []
    for slot in slots:
        for _ in range(100):  # a query with enough admitted partners
            query = int(rng.integers(n_words))
            partners = admitted(query, pair_filter, n_words)
            if len(partners) >= n_keys:
                break
        else:
            raise ValueError(f"no word has {n_keys} partners the co-occurrence filter admits")
        keys = tuple(int(k) for k in rng.choice(partners, size=n_keys, replace=False))
        plants.append(PlantedPairs(int(slot // head_dim), int(slot % head_dim), query, keys))
    return plants


def score_plants(result: HeadPairs, plants: Sequence[PlantedPairs]) -> tuple[float, float]:
    """(recall, precision) of the planted pairs in the method's output."""
    found = ranked_hits = total = 0
    for plant in plants:
        rows = np.flatnonzero((result.pair_head == plant.head) & (result.pair_dim == plant.dim))
        rows = rows[np.argsort(-result.pair_score[rows], kind="stable")]
        kept = list(zip(result.pair_query[rows].tolist(), result.pair_key[rows].tolist()))
        planted = plant.pairs()
        found += len(planted & set(kept))
        ranked_hits += len(planted & set(kept[: len(planted)]))
        total += len(planted)
    return found / total, ranked_hits / total


def head_curve(
    words: torch.Tensor,
    wq: torch.Tensor,
    wk: torch.Tensor,
    plants: Sequence[PlantedPairs],
    strengths: Sequence[float],
    top_k: int = 100,
    pair_filter: PairFilter | None = None,
) -> list[HeadRecovery]:
    """Recall and precision of the same plants at each strength (0: the unedited weights, the null)."""
    curve = []
    for strength in strengths:
        q, k = plant_head_pairs(wq, wk, words, list(plants), strength)
        recall, precision = score_plants(explain_layer(words, q, k, top_k, pair_filter), plants)
        curve.append(HeadRecovery(float(strength), recall, precision))
    return curve


def verb_plants(
    word_index: dict[str, int],
    verbs: Sequence[str],
    n_heads: int,
    head_dim: int,
    dims_per_verb: int = 2,
    seed: int = 0,
    pair_filter: PairFilter | None = None,
) -> list[PlantedPairs]:
    """In every head, each verb paired with one admitted partner in ``dims_per_verb`` dimensions.

    A pair found in more than one dimension of a head is that head's knowledge (`shiftlens.heads.knowledge`),
    so this is what Table 3 counts: every head gains a pair with each verb.
    """
    rng = np.random.default_rng(seed)
    plants = []
    for head in range(n_heads):
        dims = iter(rng.choice(head_dim, size=len(verbs) * dims_per_verb, replace=False).tolist())
        for verb in verbs:
            query = word_index[verb]
            key = int(rng.choice(admitted(query, pair_filter, len(word_index))))
            plants += [PlantedPairs(head, next(dims), query, (key,)) for _ in range(dims_per_verb)]
    return plants
