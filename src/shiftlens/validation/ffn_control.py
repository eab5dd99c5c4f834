"""Positive control of the FFN method: a planted concept (a word and its nearest neighbours) recovered by PCA.

A concept is a word group; it is planted as extra variance along the group's unit mean direction in a
down-projection (`surgery.plant_concept`), sized as a multiple of the layer's largest eigenvalue. It is
recovered when one of the first components' top words holds at least half of the group. Ratio 0 is the
null: the same groups looked for in the unedited layer.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np
import torch

from shiftlens.ffn.core import explain_layer, principal_components
from shiftlens.validation.surgery import plant_concept, unit_direction

GROUP_SIZE = 5  # a word and its 4 nearest neighbours


@dataclass(frozen=True)
class ConceptRecovery:
    """The share of trials whose planted concept a component recovered, at one variance ratio."""

    variance_ratio: float
    recovered: float
    mean_overlap: float  # the best component's share of the group, averaged over trials

    def to_json(self) -> dict[str, float]:
        """A JSON-safe dict."""
        return asdict(self)


def concept_groups(word_vectors: torch.Tensor, n_groups: int, seed: int = 0, size: int = GROUP_SIZE) -> list[list[int]]:
    """``n_groups`` random words, each with its ``size`` − 1 nearest neighbours by cosine (word indices)."""
    unit = torch.nn.functional.normalize(word_vectors.double(), dim=1)
    centres = np.random.default_rng(seed).choice(len(unit), size=n_groups, replace=False)
    return [(unit @ unit[int(c)]).topk(size).indices.tolist() for c in centres]


def best_overlap(top_indices: torch.Tensor, group: Sequence[int]) -> float:
    """The largest share of ``group`` among any one component's top words."""
    members = set(group)
    return max(len(members & set(row.tolist())) for row in top_indices) / len(members)


def concept_curve(
    rows: torch.Tensor,
    word_vectors: torch.Tensor,
    groups: Sequence[Sequence[int]],
    ratios: Sequence[float],
    n_components: int = 10,
    k: int = 50,
    seed: int = 0,
) -> list[ConceptRecovery]:
    """Recovery of each group at each variance ratio (× the layer's largest eigenvalue), one trial per group."""
    largest = float(principal_components(rows, 1).explained_variance[0])
    curve = []
    for ratio in ratios:
        overlaps = []
        for index, group in enumerate(groups):
            generator = torch.Generator().manual_seed(seed * 10_000 + index)
            planted = plant_concept(rows, unit_direction(word_vectors[list(group)]), ratio * largest, generator)
            overlaps.append(best_overlap(explain_layer(planted, word_vectors, n_components, k).top_indices, group))
        curve.append(
            ConceptRecovery(float(ratio), float(np.mean([o >= 0.5 for o in overlaps])), float(np.mean(overlaps)))
        )
    return curve
