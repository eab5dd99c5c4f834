"""Statistics of one weight update W → W + ΔW: relative size, effective rank and subspace rotation.

Pure tensor functions, float64. ΔW is given densely or as a low-rank product B·A (a LoRA update, never
merged), in which case its singular values come from an r × r problem.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch

ENERGY = 0.99  # the effective rank keeps the singular values holding this share of ‖ΔW‖²
TOP_SUBSPACE = 8  # the principal angle compares the top-k left singular subspaces of W and W + ΔW


@dataclass(frozen=True)
class LowRank:
    """A rank-r update ΔW = scale · B · A with B (out × r) and A (r × in), as PEFT's LoRA stores it."""

    b: torch.Tensor
    a: torch.Tensor
    scale: float = 1.0

    def dense(self) -> torch.Tensor:
        """ΔW as a matrix (out × in), float64."""
        return self.scale * (self.b.double() @ self.a.double())

    def singular_values(self) -> torch.Tensor:
        """The non-zero-candidate singular values of ΔW (r of them), from B = Q_B R_B and Aᵀ = Q_A R_A."""
        r_b = torch.linalg.qr(self.b.double()).R
        r_a = torch.linalg.qr(self.a.double().T).R
        return abs(self.scale) * torch.linalg.svdvals(r_b @ r_a.T)


@dataclass(frozen=True)
class DeltaStats:
    """What one update changed: ‖ΔW‖/‖W‖, its effective rank and the largest principal angle (degrees)."""

    rel_frobenius: float
    effective_rank: int
    principal_angle_deg: float | None
    frobenius_delta: float
    frobenius_base: float

    def to_json(self) -> dict[str, float | int | None]:
        """A JSON-safe dict."""
        return asdict(self)


def singular_values(matrix: torch.Tensor) -> torch.Tensor:
    """Singular values of a matrix (a vector counts as a 1 × n matrix), descending, float64.

    From the eigenvalues of the Gram matrix of the smaller side: several times cheaper than an SVD, and exact
    enough for what they serve (norms and the 99 %-energy rank; values below ~1e-8 of the largest blur).
    """
    matrix = matrix.double()
    matrix = matrix.reshape(1, -1) if matrix.ndim == 1 else matrix
    gram = matrix @ matrix.T if matrix.shape[0] <= matrix.shape[1] else matrix.T @ matrix
    return torch.linalg.eigvalsh(gram).clamp_min(0.0).sqrt().flip(0)


def effective_rank(values: torch.Tensor, energy: float = ENERGY) -> int:
    """How many of the largest singular values hold ``energy`` of the squared norm (0 for a zero update)."""
    squares = values.double().sort(descending=True).values ** 2
    total = float(squares.sum())
    if total == 0.0:
        return 0
    return int((squares.cumsum(0) < energy * total).sum()) + 1


def top_left_subspace(matrix: torch.Tensor, k: int) -> torch.Tensor:
    """The top-``k`` left singular vectors of a matrix (out × k), from the Gram matrix of its smaller side.

    Wide: eigenvectors of M Mᵀ. Tall: eigenvectors V of Mᵀ M, then U = M V normalised (U = M V Σ⁻¹).
    """
    matrix = matrix.double()
    if matrix.shape[0] <= matrix.shape[1]:
        return torch.linalg.eigh(matrix @ matrix.T).eigenvectors[:, -k:]
    left = matrix @ torch.linalg.eigh(matrix.T @ matrix).eigenvectors[:, -k:]
    return left / left.norm(dim=0, keepdim=True)


def principal_angle(a: torch.Tensor, b: torch.Tensor, k: int = TOP_SUBSPACE) -> float | None:
    """The largest principal angle (degrees) between the top-k left singular subspaces of two matrices.

    None for vectors (norm gains) and for matrices too small for a k-dimensional subspace with room to turn.
    """
    if a.ndim != 2 or min(a.shape) <= k:
        return None
    overlap = torch.linalg.svdvals(top_left_subspace(a, k).T @ top_left_subspace(b, k))
    return math.degrees(math.acos(min(1.0, float(overlap.min()))))


def delta_stats(base: torch.Tensor, delta: torch.Tensor | LowRank, k: int = TOP_SUBSPACE) -> DeltaStats:
    """`DeltaStats` of ``base`` → ``base + delta`` (``delta`` dense, or low rank and never merged for the rank)."""
    base = base.double()
    values = delta.singular_values() if isinstance(delta, LowRank) else singular_values(delta)
    dense = delta.dense() if isinstance(delta, LowRank) else delta.double()
    norm_delta, norm_base = float(values.norm()), float(base.norm())
    return DeltaStats(
        rel_frobenius=norm_delta / norm_base if norm_base > 0 else math.inf,
        effective_rank=effective_rank(values),
        principal_angle_deg=principal_angle(base, base + dense, k),
        frobenius_delta=norm_delta,
        frobenius_base=norm_base,
    )
