"""The negative control's model: the base plus noise as large as a tuning's update, every parameter row by row.

`noisy_model` applies `shiftlens.nulls.perturb_like` to each parameter of an in-memory copy of the base, so
every method reads a model whose every weight moved as far as tuning moved it, in a random direction.
"""

from __future__ import annotations

import copy

import torch

from shiftlens.errors import ShiftlensError
from shiftlens.models import LoadedModel
from shiftlens.nulls import perturb_like


def noisy_model(base: LoadedModel, tuned: LoadedModel, generator: torch.Generator, draw: int) -> LoadedModel:
    """A copy of ``base`` whose parameters are ``perturb_like(base, tuned)`` (tuned: same parameter names)."""
    model = copy.deepcopy(base.model)
    tuned_parameters = dict(tuned.model.named_parameters())
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            if name not in tuned_parameters:
                raise ShiftlensError(
                    f"the tuned model has no parameter {name!r}: the noise null needs the same weights"
                )
            noisy = perturb_like(parameter, tuned_parameters[name].to(parameter.device), generator)
            parameter.copy_(noisy.to(parameter.dtype))
    return LoadedModel(
        model,
        base.tokenizer,
        f"{base.name} + noise {draw}",
        f"{base.weight_hash}+noise{draw}",
        base.dtype,
        base.device,
        extra={"noise_draw": draw},
    )
