"""The paper's post-processing of attribution matrices: column scaling, importance density, score.

Matrices are prompt tokens (rows, n) × response tokens (columns, m). Defaults follow the paper:
L = 10 levels, entries ≤ b = 7 zeroed, density p = 4.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class DensityParams:
    """Parameters of the post-processing (paper: L=10, b=7, p=4)."""

    levels: int = 10
    threshold: int = 7
    p: float = 4.0
    eps: float = 1e-10

    def __post_init__(self) -> None:
        if self.levels < 1 or not 0 <= self.threshold < self.levels or self.p <= 1:
            raise ValueError(f"invalid density parameters {self}: need L ≥ 1, 0 ≤ b < L, p > 1")


def is_scaled(matrix: np.ndarray, params: DensityParams = DensityParams()) -> bool:
    """True for a matrix already on the integer scale 0..L (as the authors' released matrices are)."""
    m = np.asarray(matrix)
    if m.size == 0:
        return True
    return bool(np.all(m >= 0) and np.all(m <= params.levels) and np.all(m == np.round(m)))


def scale_columns(matrix: np.ndarray, params: DensityParams = DensityParams()) -> np.ndarray:
    """Per response column: clip negatives, divide by the column max, ceil(x·L), then zero entries ≤ b.

    A matrix already on the 0..L integer scale (the authors' released matrices) skips the rescaling
    only: the threshold b is applied to every matrix, as in the authors' code.
    """
    m = np.asarray(matrix, dtype=np.float64)
    if is_scaled(m, params):
        scaled = m.copy()
    else:
        clipped = np.clip(m, 0.0, None)
        scaled = np.ceil(clipped / (clipped.max(axis=0, keepdims=True) + params.eps) * params.levels)
    scaled[scaled <= params.threshold] = 0.0
    return scaled


def importance_density(matrix: np.ndarray, params: DensityParams = DensityParams()) -> np.ndarray:
    """a_n = ‖S_n‖₁ / ‖S_n‖_p of each prompt token's scaled row; 0 for an all-zero row."""
    s = scale_columns(matrix, params)
    l1 = np.abs(s).sum(axis=1)
    lp = (np.abs(s) ** params.p).sum(axis=1) ** (1.0 / params.p)
    return np.divide(l1, lp, out=np.zeros_like(l1), where=lp > 0)


def instruction_score(density: np.ndarray, mask: np.ndarray) -> float:
    """Σ_{n ∈ instruction} (a_n / max a) / log2(2 + number of instruction tokens); 0 if all a are 0."""
    density = np.asarray(density, dtype=np.float64)
    mask = np.asarray(mask, dtype=bool)
    if density.shape != mask.shape:
        raise ValueError(f"density has {density.shape[0]} tokens but the mask {mask.shape[0]}")
    peak = density.max(initial=0.0)
    if peak <= 0 or not mask.any():
        return 0.0
    return float((density[mask] / peak).sum() / np.log2(2 + mask.sum()))
