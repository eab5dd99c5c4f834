"""Statistics of one weight update W → W + ΔW: relative size, effective rank and subspace rotation, with a null.

Pure tensor functions, float64, computed from Gram matrices on the smaller side of W that are accumulated
block by block along its longer side, so no float64 copy of a whole weight (W, ΔW or the null's noise) is
ever held: a 49152 × 576 embedding costs a 576 × 576 Gram matrix and one block. ΔW is given densely, as the
difference of two checkpoints' weights, or as a low-rank product B·A (a LoRA update, never merged), whose
singular values come from an r × r problem.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch

from shiftlens.nulls import perturb_like

ENERGY = 0.99  # the effective rank keeps the singular values holding this share of ‖ΔW‖²
TOP_SUBSPACE = 8  # the principal angle compares the top-k left singular subspaces of W and W + ΔW
BLOCK = 1 << 21  # float64 elements of one block of the longer side (16 MiB)
F64 = torch.float64


@dataclass(frozen=True)
class LowRank:
    """A rank-r update ΔW = scale · B · A with B (out × r) and A (r × in), as PEFT's LoRA stores it."""

    b: torch.Tensor
    a: torch.Tensor
    scale: float = 1.0

    @property
    def shape(self) -> tuple[int, int]:
        """(out, in) of ΔW."""
        return self.b.shape[0], self.a.shape[1]

    def dense(self) -> torch.Tensor:
        """ΔW as a matrix (out × in), float64."""
        return self.block(slice(None), slice(None))

    def block(self, rows: slice, cols: slice) -> torch.Tensor:
        """Rows × columns of ΔW, float64."""
        return self.scale * (self.b[rows].double() @ self.a[:, cols].double())

    def restrict(self, rows: slice, cols: slice) -> LowRank:
        """The update of a block of W (a head's rows or columns), still low rank."""
        return LowRank(self.b[rows], self.a[:, cols], self.scale)

    def is_zero(self) -> bool:
        """True when B or A is all zeros (PEFT starts B at zero)."""
        return not (bool(self.b.any()) and bool(self.a.any()))

    def singular_values(self) -> torch.Tensor:
        """The non-zero-candidate singular values of ΔW (r of them), from B = Q_B R_B and Aᵀ = Q_A R_A."""
        r_b = torch.linalg.qr(self.b.double()).R
        r_a = torch.linalg.qr(self.a.double().T).R
        return abs(self.scale) * torch.linalg.svdvals(r_b @ r_a.T)


@dataclass(frozen=True)
class Difference:
    """ΔW = tuned − base of two checkpoints' weights of one shape, taken block by block."""

    tuned: torch.Tensor
    base: torch.Tensor

    @property
    def shape(self) -> tuple[int, ...]:
        """The weights' shape."""
        return tuple(self.base.shape)

    def block(self, rows: slice, cols: slice) -> torch.Tensor:
        """Rows × columns of ΔW, float64."""
        return self.tuned[rows, cols].double() - self.base[rows, cols].double()

    def restrict(self, rows: slice, cols: slice) -> Difference:
        """The difference of a block of both weights."""
        return Difference(self.tuned[rows, cols], self.base[rows, cols])

    def is_zero(self) -> bool:
        """True when both weights are equal."""
        return torch.equal(self.tuned, self.base)


Delta = torch.Tensor | LowRank | Difference


def _block(delta: Delta, rows: slice, cols: slice) -> torch.Tensor:
    return delta[rows, cols].double() if isinstance(delta, torch.Tensor) else delta.block(rows, cols)


def _is_zero(delta: Delta) -> bool:
    return not bool(delta.any()) if isinstance(delta, torch.Tensor) else delta.is_zero()


def restrict(delta: Delta, rows: slice, cols: slice) -> Delta:
    """ΔW of a block of W (e.g. one head's rows of W_q or columns of W_o)."""
    return delta[rows, cols] if isinstance(delta, torch.Tensor) else delta.restrict(rows, cols)


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


@dataclass(frozen=True)
class Grams:
    """Gram matrices of W (out × in) and an update U on W's smaller side: W Wᵀ, W Uᵀ, U Uᵀ when out ≤ in
    ("wide"), else Wᵀ W, Wᵀ U, Uᵀ U ("tall")."""

    tall: bool
    ww: torch.Tensor
    wu: torch.Tensor
    uu: torch.Tensor

    def tuned(self) -> torch.Tensor:
        """The Gram matrix of W + U on the same side."""
        return self.ww + self.wu + self.wu.T + self.uu


def singular_values(matrix: torch.Tensor) -> torch.Tensor:
    """Singular values of a matrix (a vector counts as a 1 × n matrix), descending, float64.

    From the eigenvalues of the Gram matrix of the smaller side: several times cheaper than an SVD, and exact
    enough for what they serve (norms and the 99 %-energy rank; values below ~1e-8 of the largest blur).
    """
    matrix = matrix.double()
    matrix = matrix.reshape(1, -1) if matrix.ndim == 1 else matrix
    return _gram_values(matrix @ matrix.T if matrix.shape[0] <= matrix.shape[1] else matrix.T @ matrix)


def _gram_values(gram: torch.Tensor) -> torch.Tensor:
    return torch.linalg.eigvalsh(gram).clamp_min(0.0).sqrt().flip(0)


def effective_rank(values: torch.Tensor, energy: float = ENERGY) -> int:
    """How many of the largest singular values hold ``energy`` of the squared norm (0 for a zero update)."""
    squares = values.double().sort(descending=True).values ** 2
    total = float(squares.sum())
    if total == 0.0:
        return 0
    return int((squares.cumsum(0) < energy * total).sum()) + 1


def _spans(length: int, width: int) -> list[slice]:
    """Blocks of the longer side, each with at most `BLOCK` elements."""
    step = max(1, BLOCK // max(width, 1))
    return [slice(start, min(start + step, length)) for start in range(0, length, step)]


def accumulate(
    base: torch.Tensor, delta: Delta, generator: torch.Generator | None = None
) -> tuple[Grams, Grams | None]:
    """The `Grams` of ΔW and (with a ``generator``) of the null: noise N as large as ΔW, row by row.

    W is read in blocks X along its longer side (rows of a tall W; columns of a wide W, transposed), so every
    Gram matrix is a sum of Xᵀ Y over blocks. A low-rank ΔW = s·B·A stays factored: W Uᵀ and U Uᵀ come from the
    r-column products. The null of a tall W draws each block's rows by `shiftlens.nulls.perturb_like`; a wide
    W's rows span every block, so Gaussian blocks Z are accumulated (Z Zᵀ, W Zᵀ) and each row scaled to ΔW's
    row norm at the end, N = diag(‖Δ_i‖ / ‖z_i‖) Z: the same distribution as perturb_like's.
    """
    out, inner = base.shape
    tall = out > inner
    side = inner if tall else out
    width = delta.b.shape[1] if isinstance(delta, LowRank) else 0
    ww, wd, dd, wn, nn = (torch.zeros(side, side, dtype=F64) for _ in range(5))
    xf, ff = torch.zeros(side, width, dtype=F64), torch.zeros(width, width, dtype=F64)
    for span in _spans(out, inner) if tall else _spans(inner, out):
        x = (base[span] if tall else base[:, span].T).double()
        ww += x.T @ x
        if isinstance(delta, LowRank):
            f = (delta.b[span] if tall else delta.a[:, span].T).double()
            xf += x.T @ f
            ff += f.T @ f
            d = delta.block(span, slice(None)) if tall and generator is not None else None
        else:
            d = _block(delta, span, slice(None)) if tall else _block(delta, slice(None), span).T
            wd += x.T @ d
            dd += d.T @ d
        if generator is None:
            continue
        noise = perturb_like(x, x + d, generator) - x if tall else torch.randn(x.shape, generator=generator, dtype=F64)
        wn += x.T @ noise
        nn += noise.T @ noise
    if isinstance(delta, LowRank):
        fixed = (delta.a if tall else delta.b.T).double()
        wd, dd = delta.scale * xf @ fixed, delta.scale**2 * fixed.T @ ff @ fixed
    grams = Grams(tall, ww, wd, dd)
    if generator is None:
        return grams, None
    if not tall:
        scale = dd.diagonal().clamp_min(0.0).sqrt() / nn.diagonal().sqrt().clamp_min(torch.finfo(F64).tiny)
        wn, nn = wn * scale[None, :], scale[:, None] * nn * scale[None, :]
    return grams, Grams(tall, ww, wn, nn)


def _top(gram: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The top-k eigenvalues and eigenvectors of a Gram matrix."""
    values, vectors = torch.linalg.eigh(gram)
    return values[-k:].clamp_min(torch.finfo(F64).tiny), vectors[:, -k:]


def subspace_angle(grams: Grams, base_top: tuple[torch.Tensor, torch.Tensor], k: int) -> float:
    """The largest principal angle (degrees) between the top-k left singular subspaces of W and W + U.

    Wide: they are the top eigenvectors of the two Gram matrices. Tall: U_W = W V Σ⁻¹ from the eigenvectors V
    of Wᵀ W, so U_Wᵀ U_{W+U} = Σ_W⁻¹ V_Wᵀ Wᵀ(W + U) V_{W+U} Σ_{W+U}⁻¹.
    """
    base_values, base_vectors = base_top
    values, vectors = _top(grams.tuned(), k)
    if grams.tall:
        cross = base_vectors.T @ (grams.ww + grams.wu) @ vectors
        cross = cross / base_values.sqrt()[:, None] / values.sqrt()[None, :]
    else:
        cross = base_vectors.T @ vectors
    return math.degrees(math.acos(min(1.0, float(torch.linalg.svdvals(cross).min()))))


def _stats(grams: Grams, values: torch.Tensor, angle: float | None) -> DeltaStats:
    norm_delta, norm_base = float(values.norm()), math.sqrt(max(float(grams.ww.trace()), 0.0))
    return DeltaStats(
        rel_frobenius=norm_delta / norm_base if norm_base > 0 else math.inf,
        effective_rank=effective_rank(values),
        principal_angle_deg=angle,
        frobenius_delta=norm_delta,
        frobenius_base=norm_base,
    )


def delta_stats(
    base: torch.Tensor, delta: Delta, k: int = TOP_SUBSPACE, generator: torch.Generator | None = None
) -> tuple[DeltaStats, DeltaStats | None]:
    """`DeltaStats` of ``base`` → ``base + delta``, and (with a ``generator``) those of its null (module doc).

    The principal angle is None for vectors (norm gains) and for matrices too small for a k-dimensional
    subspace with room to turn. A zero update costs only W's norm, and so does its null (zero noise).
    """
    if base.ndim == 1:  # a norm's gain: a 1 × n matrix
        base, delta = base[None], (Difference(delta.tuned[None], delta.base[None]) if isinstance(delta, Difference)
                                   else delta[None])  # fmt: skip
    angled = min(base.shape) > k
    if _is_zero(delta):
        norm = math.sqrt(sum(float((base[span].double() ** 2).sum()) for span in _spans(base.shape[0], base.shape[1])))
        zero = DeltaStats(0.0 if norm > 0 else math.inf, 0, 0.0 if angled else None, 0.0, norm)
        return zero, (zero if generator is not None else None)
    grams, null = accumulate(base, delta, generator)
    values = delta.singular_values() if isinstance(delta, LowRank) else _gram_values(grams.uu)
    base_top = _top(grams.ww, k) if angled else None
    observed = _stats(grams, values, subspace_angle(grams, base_top, k) if base_top else None)
    if null is None:
        return observed, None
    return observed, _stats(null, _gram_values(null.uu), subspace_angle(null, base_top, k) if base_top else None)


def principal_angle(a: torch.Tensor, b: torch.Tensor, k: int = TOP_SUBSPACE) -> float | None:
    """The largest principal angle (degrees) between the top-k left singular subspaces of two matrices.

    None for vectors (norm gains) and for matrices too small for a k-dimensional subspace with room to turn.
    """
    if a.ndim != 2 or min(a.shape) <= k:
        return None
    return delta_stats(a, Difference(b, a), k)[0].principal_angle_deg
