"""FFN against ground truth: is a planted concept held by some component's top words, and more than chance?

A model's *tops* are, for every layer's principal components (the FFN method's tensor core, its default R and
words per component), which vocabulary words are among the component's top words. A concept is recovered
when one component holds at least `RECOVERED` of its words. Its *hold* in a model is the most of its
words any one component holds; the test statistic is the sum over concepts of hold(other) − hold(base),
against the same sum for random word sets of the same sizes drawn from the vocabulary (one-sided Monte Carlo
permutation p, (1 + k) / (1 + B)). A null whose draws are all equal (base against itself) is not testable.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from shiftlens.evidence import Finding, untestable_reason
from shiftlens.ffn.core import explain_layer
from shiftlens.ffn.settings import FfnSettings
from shiftlens.ffn.sizing import resolve_components
from shiftlens.validation.defaults import RANDOM_SETS
from shiftlens.validation.inputs import ControlInputs
from shiftlens.validation.truth import Concept

RECOVERED = 3  # words of a concept one component must hold


def explain_ffn(inputs: ControlInputs, settings: FfnSettings | None = None) -> np.ndarray:
    """(components of every layer × words) bool: whether each word is among each component's top words."""
    settings = settings or FfnSettings()
    rows = [inputs.down_rows(layer) for layer in range(inputs.n_layers)]
    components = resolve_components(settings.components, rows[0].shape[1])
    tops = np.zeros((components * len(rows), len(inputs.vocabulary)), dtype=bool)
    for layer, layer_rows in enumerate(rows):
        top = explain_layer(layer_rows, inputs.output_words, components, settings.top_k).top_indices.numpy()
        for c, words in enumerate(top):
            tops[layer * components + c, words] = True
    return tops


def concept_indices(concepts: Sequence[Concept], word_index: dict[str, int]) -> list[np.ndarray]:
    """Each concept's words present in the vocabulary, as word rows."""
    return [np.array(sorted({word_index[w] for w in c.words if w in word_index}), dtype=int) for c in concepts]


def hold(tops: np.ndarray, words: np.ndarray) -> np.ndarray:
    """The most of each word set (rows of ``words``, sets × size) any one component holds."""
    return tops[:, words].sum(axis=-1).max(axis=0) if words.size else np.zeros(len(words), dtype=int)


def concept_recall(tops: np.ndarray, groups: Sequence[np.ndarray]) -> dict[str, Any]:
    """The share of concepts one component holds at least `RECOVERED` words of (fewer for smaller concepts)."""
    usable = [g for g in groups if g.size]
    holds = [int(hold(tops, g[None])[0]) for g in usable]
    recovered = [h >= min(RECOVERED, g.size) for h, g in zip(holds, usable)]
    return {"recall": float(np.mean(recovered)) if usable else None, "holds": holds, "n_concepts": len(groups)}


def concept_finding(
    base: np.ndarray, other: np.ndarray, groups: Sequence[np.ndarray], label: str, seed: int = 0
) -> Finding:
    """Whether the concepts' hold grows from base to other more than that of random same-size word sets."""
    claim = f"{label} gains components that hold the planted concepts, beyond random word sets"
    usable = [g for g in groups if g.size]
    if not usable:
        return Finding.untestable("ffn", claim, "no planted concept word is in the vocabulary")
    observed = sum(int(hold(other, g[None])[0] - hold(base, g[None])[0]) for g in usable)
    rng = np.random.default_rng(seed)
    n_words = base.shape[1]
    null = np.zeros(RANDOM_SETS)
    for g in usable:
        sets = np.stack([rng.choice(n_words, size=g.size, replace=False) for _ in range(RANDOM_SETS)])
        null += hold(other, sets) - hold(base, sets)
    reason = untestable_reason(null)
    if reason:
        return Finding.untestable("ffn", claim, f"random word sets: {reason.removeprefix('side 1: ')}")
    p = (1 + int(np.sum(null >= observed))) / (1 + RANDOM_SETS)
    effect = (observed - null.mean()) / null.std(ddof=1)
    return Finding("ffn", claim, testable=True, p_value=p, effect_size=float(effect))
