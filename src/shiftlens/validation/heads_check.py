"""Heads against ground truth: recall and precision of the planted relations, and Table 3 for their query words.

A relation (query word → key words) is recovered when some dimension of a head in the planted layers keeps
the pair (query, key) for one of its keys; pair recall is the share of all planted (query, key) pairs kept
there. Precision: among the kept pairs of those layers whose query is a
planted query word, the share whose key is one of its planted keys. Table 3 (sound protocol,
`shiftlens.analysis.heads.compare_pairs`) compares the planted query words with frequency-matched random
words of the vocabulary (every word that is in no relation).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from shiftlens.analysis.heads import compare_pairs
from shiftlens.evidence import Finding
from shiftlens.heads.core import HeadPairs, explain_layer
from shiftlens.heads.records import unit_rows
from shiftlens.validation.inputs import ControlInputs
from shiftlens.validation.truth import Relation


def explain_heads(inputs: ControlInputs, top_k: int) -> list[HeadPairs]:
    """Every layer's kept pairs (the heads method's tensor core on the model's W_q/W_k)."""
    return [
        explain_layer(inputs.words, *inputs.attention(layer), top_k, inputs.pair_filter)
        for layer in range(inputs.n_layers)
    ]


def pair_rows(layers: Sequence[HeadPairs], words: list[str]) -> dict[str, np.ndarray]:
    """Every layer's pairs as the flat rows Table 3 reads."""
    parts = [unit_rows(layer, pairs.arrays(), words) for layer, pairs in enumerate(layers)]
    return {key: np.concatenate([p[key] for p in parts]) for key in parts[0]}


def relation_recall(
    layers: Sequence[HeadPairs],
    word_index: dict[str, int],
    relations: Sequence[Relation],
    planted: Sequence[int] | None,
) -> dict[str, Any]:
    """Recall and precision of the relations among the kept pairs of the ``planted`` layers (None: all)."""
    chosen = range(len(layers)) if planted is None else planted
    query = np.concatenate([layers[i].pair_query for i in chosen])
    key = np.concatenate([layers[i].pair_key for i in chosen])
    kept = set(zip(query.tolist(), key.tolist()))
    usable = [r for r in relations if r.query in word_index and any(k in word_index for k in r.keys)]
    wanted = {word_index[r.query]: {word_index[k] for k in r.keys if k in word_index} for r in usable}
    recovered = sum(any((word_index[r.query], k) in kept for k in wanted[word_index[r.query]]) for r in usable)
    with_query = [(q, k) for q, k in kept if q in wanted]
    right = sum(k in wanted[q] for q, k in with_query)
    pairs = [(q, k) for q, keys in wanted.items() for k in keys]
    return {
        "recall": recovered / len(usable) if usable else None,
        "pair_recall": sum(p in kept for p in pairs) / len(pairs) if pairs else None,
        "precision": right / len(with_query) if with_query else None,
        "n_relations": len(relations),
        "n_in_vocabulary": len(usable),
    }


def table3_finding(
    base_rows: dict[str, np.ndarray], other_rows: dict[str, np.ndarray], relations: Sequence[Relation], words: list[str]
) -> Finding:
    """Table 3 (sound, one group over all layers) for the planted query words against random vocabulary words."""
    queries = sorted({r.query for r in relations})
    planted = set(queries) | {k for r in relations for k in r.keys}
    pool = sorted({w.lower() for w in words} - planted)
    if not queries:
        return Finding.untestable("heads", "Table 3 of the planted query words", "no relation is planted")
    result = compare_pairs(base_rows, other_rows, queries, pool)
    return Finding.from_json(result["finding"][0])
