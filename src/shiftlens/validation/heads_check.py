"""Heads against ground truth: recall and precision of the planted relations, a test of their gain, and Table 3.

A relation (query word → key words) is recovered when some dimension of a head in the planted layers keeps
the pair (query, key) for one of its keys; pair recall is the share of all planted (query, key) pairs kept
there. Precision: among the kept pairs of those layers whose query is a planted query word, the share whose
key is one of its planted keys. The headline test (`pair_gain_finding`) asks whether the model gains the
planted pairs more than random pairs of the same query words that the method's pair filter admits. Table 3
(sound protocol, `shiftlens.analysis.heads.compare_pairs`), reported beside it, compares the planted query
words with frequency-matched random words of the vocabulary (every word that is in no relation).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from shiftlens.analysis.heads import compare_pairs
from shiftlens.evidence import Finding, untestable_reason
from shiftlens.heads.core import HeadPairs, PairFilter, explain_layer, filter_pairs
from shiftlens.heads.records import unit_rows
from shiftlens.validation.defaults import RANDOM_SETS
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


def planted_keys(word_index: dict[str, int], relations: Sequence[Relation]) -> dict[int, set[int]]:
    """Each planted query word's planted keys, as word rows (words outside the list left out)."""
    wanted: dict[int, set[int]] = {}
    for relation in relations:
        keys = {word_index[k] for k in relation.keys if k in word_index}
        if relation.query in word_index and keys:
            wanted.setdefault(word_index[relation.query], set()).update(keys)
    return wanted


def kept_pairs(layers: Sequence[HeadPairs], planted: Sequence[int] | None) -> np.ndarray:
    """The distinct (query, key) rows (pairs × 2) some head dimension of the ``planted`` layers keeps (None: all)."""
    chosen = range(len(layers)) if planted is None else planted
    pairs = [np.stack([layers[i].pair_query, layers[i].pair_key], axis=1) for i in chosen]
    return np.unique(np.concatenate([np.zeros((0, 2), dtype=np.int64), *pairs]), axis=0)


def relation_recall(
    layers: Sequence[HeadPairs],
    word_index: dict[str, int],
    relations: Sequence[Relation],
    planted: Sequence[int] | None,
) -> dict[str, Any]:
    """Recall and precision of the relations among the kept pairs of the ``planted`` layers (None: all)."""
    kept = set(map(tuple, kept_pairs(layers, planted).tolist()))
    usable = [r for r in relations if r.query in word_index and any(k in word_index for k in r.keys)]
    wanted = planted_keys(word_index, relations)
    recovered = sum(
        any((word_index[r.query], word_index[k]) in kept for k in r.keys if k in word_index) for r in usable
    )
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


def admissible_keys(wanted: dict[int, set[int]], pair_filter: PairFilter | None, n_words: int) -> dict[int, np.ndarray]:
    """Each planted query's words the heads method could keep as its key, other than its planted keys.

    Admissible: the method's own pair-filter rule (`shiftlens.heads.core.filter_pairs`, on the method's float64
    copy of the filter) and key ≠ query; without a filter every other word.
    """
    queries = sorted(wanted)
    if pair_filter is None:
        admitted = np.ones((len(queries), n_words), dtype=bool)
    else:
        double = PairFilter(pair_filter.vectors.double(), pair_filter.thresholds.double())
        device = double.vectors.device
        query = torch.tensor([queries], dtype=torch.long, device=device)
        _, ok = filter_pairs(double, query, torch.arange(n_words, device=device)[None])
        admitted = ok[0].cpu().numpy()
    out = {}
    for row, q in zip(admitted, queries, strict=True):
        row[[q, *wanted[q]]] = False
        out[q] = np.flatnonzero(row)
    return out


def pair_gain_finding(
    base: np.ndarray,
    other: np.ndarray,
    wanted: dict[int, set[int]],
    admissible: dict[int, np.ndarray],
    label: str,
    seed: int = 0,
) -> tuple[Finding, dict[str, Any]]:
    """Whether ``other`` gains the planted pairs beyond random admissible pairs of the same query words.

    ``base``/``other``: kept (query, key) rows of the planted layers (`kept_pairs`). Statistic: Σ over planted
    pairs of kept in other − kept in base. Null: the same for `RANDOM_SETS` sets in which each planted (q, k)
    becomes (q, k′), k′ drawn from ``admissible[q]`` (`admissible_keys`; distinct within a query when it has
    enough). Admissible, not any word: continued pre-training on WordNet glosses strengthens co-occurring pairs
    in general and every planted pair co-occurs, so unconstrained random pairs would make any further training
    look like a planted shift (a further training that gains the planted pairs themselves is still declared:
    docs/validation.md, "Not done yet"). One-sided Monte Carlo p = (1 + #{null ≥ observed}) / (1 + B); effect =
    (observed − null mean) / null sd. A query without an admissible key is left out of both sides (``dropped``).
    Returns the finding and the figures ``observed``, ``null_mean`` and ``dropped`` (query rows).
    """
    claim = f"{label} gains the planted head word pairs beyond random admissible pairs of the same query words"
    dropped = [q for q in sorted(wanted) if not admissible[q].size]
    usable = [q for q in sorted(wanted) if admissible[q].size]
    figures: dict[str, Any] = {"observed": None, "null_mean": None, "dropped": dropped}
    if not usable:
        why = "no planted query word has an admissible non-planted key" if wanted else "no relation is in the word list"
        return Finding.untestable("heads", claim, why), figures
    rng = np.random.default_rng(seed)
    observed = 0
    null = np.zeros(RANDOM_SETS)
    for q in usable:
        in_base, in_other = base[base[:, 0] == q, 1], other[other[:, 0] == q, 1]
        keys, pool = np.array(sorted(wanted[q])), admissible[q]
        observed += int(np.isin(keys, in_other).sum() - np.isin(keys, in_base).sum())
        draws = np.stack([rng.choice(pool, size=keys.size, replace=pool.size < keys.size) for _ in range(RANDOM_SETS)])
        null += np.isin(draws, in_other).sum(axis=1) - np.isin(draws, in_base).sum(axis=1)
    figures.update(observed=observed, null_mean=float(null.mean()))
    reason = untestable_reason(null)
    if reason:
        return Finding.untestable(
            "heads", claim, f"random admissible pairs: {reason.removeprefix('side 1: ')}"
        ), figures
    p = (1 + int(np.sum(null >= observed))) / (1 + RANDOM_SETS)
    effect = (observed - null.mean()) / null.std(ddof=1)
    return Finding("heads", claim, testable=True, p_value=p, effect_size=float(effect)), figures


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
