"""Slow, literal gradient × input attribution, written straight from the formula, to check and time the core.

`attribute_reference` runs, for every target, a full forward over the whole sequence through the full
model (all logits) and one backward of the objective. `attribute_paper_style` is the same loop in the
authors' setting, for the benchmark: parameter gradients enabled and computed on every backward.
"""

from __future__ import annotations

from typing import Any

import torch

from shiftlens.attribution.gradients import frozen, wide
from shiftlens.attribution.inputs import validate


def literal_objective(logits: torch.Tensor, token: int, objective: str) -> torch.Tensor:
    """f for one row of logits (V,), straight from the definitions, independent of the core's code."""
    if objective == "prob":
        return torch.softmax(logits, dim=-1)[token]
    if objective == "logprob":
        return torch.log(torch.softmax(logits, dim=-1)[token])
    return logits[token]


def _token_objective(model: Any, embeds: torch.Tensor, ids: torch.Tensor, target: int, objective: str) -> torch.Tensor:
    logits = wide(model(inputs_embeds=embeds[None], use_cache=False).logits[0, target - 1])
    return literal_objective(logits, int(ids[target]), objective)


def attribute_reference(
    model: Any,
    input_ids: torch.Tensor,
    source_positions: torch.Tensor,
    target_positions: torch.Tensor,
    objective: str = "prob",
) -> torch.Tensor:
    """(N, M) float32: per target, a full forward and backward; entry = Σ_h ∂f_j/∂e_{n,h} · e_{n,h}."""
    ids, sources, targets = validate(input_ids, source_positions, target_positions, objective, "loop", None)
    result = torch.zeros(len(sources), len(targets))
    with frozen(model):
        embeds = model.get_input_embeddings()(ids.to(model.device)).detach()
        for j, target in enumerate(targets.tolist()):
            leaf = embeds.clone().requires_grad_(True)
            with torch.enable_grad():
                (grad,) = torch.autograd.grad(_token_objective(model, leaf, ids, target, objective), leaf)
            result[:, j] = (wide(grad[sources]) * wide(embeds[sources])).sum(-1).float().cpu()
    return result


def attribute_paper_style(
    model: Any,
    input_ids: torch.Tensor,
    source_positions: torch.Tensor,
    target_positions: torch.Tensor,
    objective: str = "prob",
) -> torch.Tensor:
    """(N, M) like the authors: parameters require grad; per response token a full forward and ``backward()``.

    Parameter gradients are computed (and zeroed per token) as a training-style loop would, which is what
    makes this setting slow; the model's ``requires_grad`` flags are restored afterwards.
    """
    ids, sources, targets = validate(input_ids, source_positions, target_positions, objective, "loop", None)
    flags = [p.requires_grad for p in model.parameters()]
    model.requires_grad_(True)
    result = torch.zeros(len(sources), len(targets))
    try:
        embeds = model.get_input_embeddings()(ids.to(model.device)).detach()
        for j, target in enumerate(targets.tolist()):
            model.zero_grad(set_to_none=True)
            leaf = embeds.clone().requires_grad_(True)
            with torch.enable_grad():
                _token_objective(model, leaf, ids, target, objective).backward()
            result[:, j] = (wide(leaf.grad[sources]) * wide(embeds[sources])).sum(-1).float().cpu()
    finally:
        model.zero_grad(set_to_none=True)
        for p, flag in zip(model.parameters(), flags):
            p.requires_grad_(flag)
    return result
