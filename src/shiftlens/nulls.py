"""Null models of a tuning update: the base plus random noise as large as the tuning's, row by row.

If an observed base → tuned shift (head overlap, FFN rotation, ...) is no larger than the same statistic
between the base and `perturb_like(base, tuned)`, the shift says nothing the update's size alone would not.
"""

from __future__ import annotations

import copy

import torch

from shiftlens.errors import ShiftlensError


def perturb_like(base: torch.Tensor, tuned: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """base + Gaussian noise whose every row has the norm of that row of (tuned − base); float32 or wider.

    The direction of each row's noise is uniform on the sphere, so the perturbation keeps the update's
    per-row relative size and nothing of its structure.
    """
    if base.shape != tuned.shape:
        raise ValueError(f"base and tuned weights differ in shape: {tuple(base.shape)} vs {tuple(tuned.shape)}")
    dtype = torch.promote_types(base.dtype, torch.float32)
    base, tuned = base.to(dtype), tuned.to(dtype)
    delta_norm = (tuned - base).reshape(base.shape[0], -1).norm(dim=1)
    noise = torch.randn(base.shape, generator=generator, dtype=dtype, device=base.device).reshape(base.shape[0], -1)
    noise = noise / noise.norm(dim=1, keepdim=True).clamp_min(torch.finfo(dtype).tiny)
    return base + (noise * delta_norm[:, None]).reshape(base.shape)


def perturbed_module(base: torch.nn.Module, tuned: torch.nn.Module, generator: torch.Generator) -> torch.nn.Module:
    """A copy of ``base`` with every parameter replaced by `perturb_like` (base, tuned): a whole-model null.

    Parameters are taken in ``named_parameters`` order (tied weights once) with the one CPU ``generator``, so
    the draw does not depend on the device; a parameter the tuning left unchanged stays exactly the base's.
    """
    tuned_parameters = dict(tuned.named_parameters())
    model = copy.deepcopy(base)
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            if name not in tuned_parameters:
                raise ShiftlensError(
                    f"the tuned model has no parameter {name!r}: the noise null needs the same weights"
                )
            other = tuned_parameters[name]
            parameter.copy_(perturb_like(parameter.cpu(), other.cpu(), generator).to(parameter))
    return model


def seeded_generators(seeds: int, device: str | torch.device = "cpu", start: int = 0) -> list[torch.Generator]:
    """`seeds` independent generators seeded start, start + 1, ... (one per null draw, reproducible)."""
    return [torch.Generator(device=device).manual_seed(start + i) for i in range(seeds)]
