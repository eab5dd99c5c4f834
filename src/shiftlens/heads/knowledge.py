"""From a run's flat pair rows to what the base-vs-tuned comparison counts: head knowledge and word fractions.

Two readings of a head's *knowledge* (its recurring word pairs), one per protocol:

- ``sound``: the order-free, lower-cased pairs of distinct words found in more than one of the head's
  dimensions (a pair listed as q=k and as k=q in one dimension is one dimension's evidence).
- ``paper``: as the authors' analysis does it: each pair's two words sorted as written, then lower-cased,
  and counted over every pair of every dimension; knowledge = the pairs counted more than once (a pair found
  as q=k and as k=q in one dimension counts twice; a word paired with its own other spelling is kept).

For a word and a set of heads, the *fraction* is the share of heads whose knowledge has more pairs with the
word in tuned than in base, over the heads where the two counts differ (ties dropped).
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from shiftlens.heads.settings import HeadsAnalysisError

Pair = tuple[str, str]
HeadKey = tuple[int, int]
PAPER_GROUP_SIZE = 8  # the authors group layers as layer // 8
MIN_GROUP_LAYERS = 4  # sound protocol: a layer group has at least this many layers
SOUND_GROUPS = 4  # sound protocol: quarters of the depth once there are 4 × MIN_GROUP_LAYERS layers


def _heads(rows: dict[str, np.ndarray]) -> list[HeadKey]:
    return [(int(layer), int(head)) for layer, head in rows["heads"]]


def _count(table: pa.Table, aggregate: tuple[str, str], heads: list[HeadKey]) -> dict[HeadKey, dict[Pair, int]]:
    counted = table.group_by(["layer", "head", "a", "b"]).aggregate([aggregate]).to_pydict()
    pairs: dict[HeadKey, dict[Pair, int]] = {h: {} for h in heads}
    columns = [counted[name] for name in ("layer", "head", "a", "b", f"{aggregate[0]}_{aggregate[1]}")]
    for layer, head, a, b, n in zip(*columns):
        pairs.setdefault((layer, head), {})[(a, b)] = n
    return pairs


def head_pairs(rows: dict[str, np.ndarray]) -> dict[HeadKey, dict[Pair, int]]:
    """Per (layer, head): each order-free lower-cased pair of distinct words and how many dimensions hold it."""
    query = pc.utf8_lower(pa.array(rows["query"], pa.string()))
    key = pc.utf8_lower(pa.array(rows["key"], pa.string()))
    first = pc.less(query, key)
    table = pa.table(
        {
            "layer": rows["layer"],
            "head": rows["head"],
            "a": pc.if_else(first, query, key),
            "b": pc.if_else(first, key, query),
            "dim": rows["dim"],
        }
    ).filter(pc.not_equal(query, key))
    return _count(table, ("dim", "count_distinct"), _heads(rows))


def paper_head_pairs(rows: dict[str, np.ndarray]) -> dict[HeadKey, dict[Pair, int]]:
    """Per (layer, head): each pair, its words sorted as written then lower-cased, and its number of rows."""
    query = pa.array(rows["query"], pa.string())
    key = pa.array(rows["key"], pa.string())
    first = pc.less_equal(query, key)  # code-point order of the written words, as Python's sorted()
    table = pa.table(
        {
            "layer": rows["layer"],
            "head": rows["head"],
            "a": pc.utf8_lower(pc.if_else(first, query, key)),
            "b": pc.utf8_lower(pc.if_else(first, key, query)),
            "dim": rows["dim"],
        }
    )
    return _count(table, ("dim", "count"), _heads(rows))


PAIR_COUNTERS = {"sound": head_pairs, "paper": paper_head_pairs}


def knowledge(pairs: dict[Pair, int]) -> set[Pair]:
    """A head's knowledge: the pairs counted more than once (see the module doc for what is counted)."""
    return {pair for pair, n in pairs.items() if n > 1}


def word_counts(pairs: set[Pair]) -> Counter[str]:
    """How often each word occurs in a set of pairs (a word paired with itself counts twice)."""
    return Counter(word for pair in pairs for word in pair)


def sound_layer_groups(layers: list[int], n_groups: int | None = None) -> list[list[int]]:
    """Consecutive near-equal groups of at least `MIN_GROUP_LAYERS` layers.

    Default: quarters of the depth from 16 layers on, one group below. An explicit ``n_groups`` that
    would leave a group with fewer layers is refused.
    """
    layers = sorted(layers)
    if n_groups is None:
        n_groups = SOUND_GROUPS if len(layers) >= SOUND_GROUPS * MIN_GROUP_LAYERS else 1
    if n_groups < 1 or (n_groups > 1 and len(layers) // n_groups < MIN_GROUP_LAYERS):
        raise HeadsAnalysisError(
            f"{n_groups} layer groups of {len(layers)} layers leave fewer than {MIN_GROUP_LAYERS} layers in a "
            f"group; use at most {max(1, len(layers) // MIN_GROUP_LAYERS)}"
        )
    return [list(map(int, g)) for g in np.array_split(np.array(layers), n_groups)]


def paper_layer_groups(layers: list[int]) -> list[list[int]]:
    """The authors' groups: layers with the same ``layer // 8``."""
    groups: dict[int, list[int]] = {}
    for layer in sorted(layers):
        groups.setdefault(layer // PAPER_GROUP_SIZE, []).append(layer)
    return list(groups.values())


@dataclass(frozen=True)
class WordFraction:
    """A word's fraction of changed heads where tuned has more pairs with it, and how many heads changed."""

    fraction: float | None
    n_changed: int


def tuned_more_fraction(
    word: str, heads: list[HeadKey], base: dict[HeadKey, Counter[str]], tuned: dict[HeadKey, Counter[str]]
) -> WordFraction:
    """Share of ``heads`` where tuned knowledge has more pairs with ``word`` than base; ties dropped."""
    more = changed = 0
    for head in heads:
        b, t = base[head][word], tuned[head][word]
        if b != t:
            changed += 1
            more += t > b
    return WordFraction(more / changed if changed else None, changed)


def head_overlap(
    base: dict[HeadKey, dict[Pair, int]], other: dict[HeadKey, dict[Pair, int]], heads: list[HeadKey]
) -> list[dict]:
    """Per layer: each head's Jaccard overlap of its pair sets (NaN with no pair on either side) and the mean."""
    overlap = []
    for layer in sorted({layer for layer, _ in heads}):
        values = []
        for h in (h for h in heads if h[0] == layer):
            a, b = set(base.get(h, {})), set(other.get(h, {}))
            values.append(len(a & b) / len(a | b) if a | b else math.nan)
        finite = [v for v in values if not math.isnan(v)]
        overlap.append({"layer": layer, "mean": float(np.mean(finite)) if finite else math.nan, "heads": values})
    return overlap
