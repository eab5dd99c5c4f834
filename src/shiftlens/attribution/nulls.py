"""Null baselines for the instruction score: length-matched control spans, the instruction-minus-rest
contrast, and where the instruction sits in the prompt.

The **placements** of an instruction mask over N prompt tokens are its N circular shifts (rotations):
the same number of tokens and the same shape, at every position of the same prompt; placement 0 is the
instruction itself, the others are its **control spans**. Every token is covered by exactly as many
placements, so the set has no preferred position. The **position** of a placement is the third of the
prompt its token centre falls in ("start", "middle", "end"); a stratum's controls are the other
placements in the same third (**position-matched**): anywhere controls would mix the instruction up with
its place (a tuned model that attributes more to the start of every prompt makes any span there "gain").

Test (`placement_p`): the null hypothesis is that each example's instruction is one placement drawn at
random from its admissible set (all placements, or those in its third). The statistic is the mean over
examples of the instruction's tuned − base score gain minus the mean gain of its controls; its null
distribution comes from drawing, per example, a random placement in the instruction's place. The test
is exact under that hypothesis, needs no symmetry, and a random span in place of the instruction meets
the hypothesis by construction (bench/calibrate_attribution.py measures it). A prompt whose instruction
covers every token (or none), or whose third holds no other placement, has no control and is left out.

The **contrast** of a record is the mean max-normalised importance density on instruction tokens minus
that on the other prompt tokens.
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from shiftlens.stats import PERMUTATIONS

STRATA = ("start", "middle", "end")


@dataclass(frozen=True)
class NullStats:
    """One example's instruction and control scores, contrasts, and the gain of every placement."""

    id: str
    group: str
    position: str
    score: tuple[float, float]
    control: tuple[float, float]
    contrast: tuple[float, float]
    gains: np.ndarray  # tuned − base score of each placement; [0] is the instruction
    thirds: np.ndarray  # index into STRATA of each placement

    @property
    def gain(self) -> float:
        """Tuned minus base instruction score."""
        return float(self.gains[0])

    @property
    def control_gain(self) -> float:
        """Tuned minus base score of the control spans (mean over every other placement)."""
        return float(self.gains[1:].mean())

    def matched(self) -> np.ndarray:
        """Gains of the placements in the instruction's third, the instruction's first."""
        return self.gains[self.thirds == self.thirds[0]]


def example_rng(seed: int, example_id: str) -> np.random.Generator:
    """The generator of one example's draws: reproducible per (seed, id), independent of example order."""
    return np.random.default_rng([seed, zlib.crc32(example_id.encode("utf-8"))])


def rotate(mask: np.ndarray, shifts: Sequence[int] | np.ndarray) -> np.ndarray:
    """One row per shift: ``mask`` circularly shifted right by that many tokens."""
    index = (np.arange(mask.size)[None, :] - np.asarray(shifts)[:, None]) % mask.size
    return mask[index]


def placements(mask: np.ndarray) -> np.ndarray:
    """All N rotations of a mask of N tokens, row s shifted by s (row 0 is the mask itself)."""
    return rotate(mask, np.arange(mask.size))


def random_placement(mask: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """One rotation of ``mask`` by a uniform shift in 0..N−1 (a random span of the same shape)."""
    return rotate(mask, [rng.integers(0, mask.size)])[0]


def span_scores(density: np.ndarray, masks: np.ndarray) -> np.ndarray:
    """`shiftlens.density.instruction_score` of each mask row at once."""
    peak = density.max(initial=0.0)
    if peak <= 0:
        return np.zeros(masks.shape[0])
    return (masks @ (density / peak)) / np.log2(2 + masks.sum(axis=1))


def contrast(density: np.ndarray, mask: np.ndarray) -> float:
    """Mean normalised density on the masked tokens minus on the others (0 for an all-zero density)."""
    peak = density.max(initial=0.0)
    if peak <= 0:
        return 0.0
    normalised = density / peak
    return float(normalised[mask].mean() - normalised[~mask].mean())


def thirds(masks: np.ndarray) -> np.ndarray:
    """Index into `STRATA` of each mask row: its tokens' mean relative position (n + ½)/N below ⅓, above ⅔, else."""
    n = masks.shape[1]
    centre = (masks @ (np.arange(n) + 0.5)) / masks.sum(axis=1) / n
    return np.where(centre < 1 / 3, 0, np.where(centre > 2 / 3, 2, 1))


def position(mask: np.ndarray) -> str:
    """Where the instruction's token centre falls: "start", "middle" or "end" third of the prompt."""
    return STRATA[int(thirds(mask[None])[0])]


def has_control(mask: np.ndarray) -> bool:
    """Whether a mask leaves room for a control span and a contrast: some but not all tokens marked."""
    return bool(mask.any() and not mask.all())


def null_stats(example_id: str, group: str, densities: tuple[np.ndarray, np.ndarray], mask: np.ndarray) -> NullStats:
    """Scores of every placement of ``mask`` under the base and tuned densities (``mask``: `has_control`)."""
    rows = placements(mask)
    base, tuned = (span_scores(d, rows) for d in densities)
    return NullStats(
        id=example_id,
        group=group,
        position=position(mask),
        score=(float(base[0]), float(tuned[0])),
        control=(float(base[1:].mean()), float(tuned[1:].mean())),
        contrast=(contrast(densities[0], mask), contrast(densities[1], mask)),
        gains=tuned - base,
        thirds=thirds(rows),
    )


def control_excess(density: np.ndarray, mask: np.ndarray) -> float:
    """One model's instruction score minus the mean score of its control spans (``mask``: `has_control`)."""
    scores = span_scores(density, placements(mask))
    return float(scores[0] - scores[1:].mean())


def excess(gains: np.ndarray) -> np.ndarray:
    """For each placement: its gain minus the mean gain of the other placements (needs ≥ 2 placements)."""
    return gains - (gains.sum() - gains) / (gains.size - 1)


def placement_p(sets: Sequence[np.ndarray], permutations: int = PERMUTATIONS, seed: int = 0) -> float:
    """Two-sided randomization p-value of mean_i excess(sets[i])[0] against random placements (module doc).

    ``sets[i]`` holds the gains of example i's admissible placements, the observed one first (≥ 2 each).
    """
    if not sets:
        return math.nan
    rng = np.random.default_rng(seed)
    per_example = [excess(np.asarray(g, dtype=np.float64)) for g in sets]
    observed = abs(float(np.mean([x[0] for x in per_example])))
    null = np.zeros(permutations)
    for x in per_example:
        null += x[rng.integers(0, x.size, permutations)]
    null = np.abs(null / len(per_example))
    extreme = int(np.sum(null >= observed - 1e-12 * max(1.0, observed)))
    return (1 + extreme) / (1 + permutations)
