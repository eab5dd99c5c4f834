"""The negative control's model: the base plus noise as large as a tuning's update, every parameter row by row.

`noisy_model` applies `shiftlens.nulls.perturb_like` to each parameter of an in-memory copy of the base
(`shiftlens.nulls.perturbed_module`), so every method reads a model whose every weight moved as far as tuning
moved it, in a random direction.
"""

from __future__ import annotations

import torch

from shiftlens.models import LoadedModel
from shiftlens.nulls import perturbed_module


def noisy_model(base: LoadedModel, tuned: LoadedModel, generator: torch.Generator, draw: int) -> LoadedModel:
    """A copy of ``base`` whose parameters are ``perturb_like(base, tuned)`` (tuned: same parameter names)."""
    model = perturbed_module(base.model, tuned.model, generator)
    return LoadedModel(
        model,
        base.tokenizer,
        f"{base.name} + noise {draw}",
        f"{base.weight_hash}+noise{draw}",
        base.dtype,
        base.device,
        extra={"noise_draw": draw},
    )
