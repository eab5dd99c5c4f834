"""Memory sizes for the attribution plan: bytes of the weights and of one gradient-enabled forward's activations."""

from __future__ import annotations

from typing import Any

import torch

from shiftlens.attribution.gradients import Padded


def weight_bytes(model: Any) -> int:
    """Bytes of the model's parameters (tied ones once)."""
    return sum(p.numel() * p.element_size() for p in model.parameters())


def activation_bytes(model: Any, batch: Padded) -> int:
    """Bytes autograd saves in one gradient-enabled forward of ``batch`` (parameters and buffers not counted).

    Counted with saved-tensor hooks, each storage once, whatever the architecture or attention implementation:
    one gradient-enabled forward, holding the activations until it returns.
    """
    seen = {t.untyped_storage().data_ptr() for t in (*model.parameters(), *model.buffers())}
    total = 0

    def pack(tensor: torch.Tensor) -> torch.Tensor:
        nonlocal total
        storage = tensor.untyped_storage()
        if storage.data_ptr() not in seen:
            seen.add(storage.data_ptr())
            total += storage.nbytes()
        return tensor

    with torch.enable_grad(), torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        batch.hidden(model, batch.embeds.detach().requires_grad_(True))
    return total


PROBE_LENGTHS = (16, 32, 48)  # the activations of longer batches are extrapolated from these


def estimated_activation_bytes(model: Any, batch: Padded) -> int:
    """`activation_bytes` of ``batch``, counted on its first 16, 32 and 48 positions and extrapolated.

    The saved bytes of a causal LM forward are a quadratic in the length (per-token tensors, and per-layer
    T × T attention weights and masks for eager attention), so three counts fix them; probing short prefixes
    keeps the probe's memory (which the allocator may keep after it is freed) and time small.
    """
    length = batch.embeds.shape[1]
    if length <= PROBE_LENGTHS[-1]:
        return activation_bytes(model, batch)
    counts = []
    for n in PROBE_LENGTHS:
        mask = None
        if batch.mask is not None:  # keep a padded position: transformers drops all-ones masks (no mask tensors)
            mask = batch.mask[:, :n].clone()
            mask[0, -1] = 0 if bool(mask.all()) else mask[0, -1]
        counts.append(activation_bytes(model, Padded(batch.embeds[:, :n], mask, batch.positions[:, :n], batch.offsets)))
    total = 0.0  # the Lagrange form of the quadratic through the three counts, at `length`
    for i, (x_i, y_i) in enumerate(zip(PROBE_LENGTHS, counts)):
        weight = 1.0
        for j, x_j in enumerate(PROBE_LENGTHS):
            if j != i:
                weight *= (length - x_j) / (x_i - x_j)
        total += weight * y_i
    return max(round(total), counts[-1])
