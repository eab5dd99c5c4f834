"""Memory sizes for the attribution plan: bytes of the weights and of one gradient-enabled forward's activations."""

from __future__ import annotations

import weakref
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
# Per model, the probe counts by batch size, mask presence, dtype and attention implementation: what the saved
# bytes depend on (never the token values), so a run of many examples probes once, not three times each.
_PROBES: weakref.WeakKeyDictionary[Any, dict[tuple[Any, ...], list[int]]] = weakref.WeakKeyDictionary()


def _probe_key(model: Any, batch: Padded) -> tuple[Any, ...]:
    """What a batch's saved bytes depend on besides its length: size, mask presence, dtype, device, attention."""
    attention = getattr(model.config, "_attn_implementation", None)
    return (batch.embeds.shape[0], batch.mask is None, batch.embeds.dtype, str(batch.embeds.device), attention)


def _probe_counts(model: Any, batch: Padded) -> list[int]:
    """`activation_bytes` of copies of the batch's first 16, 32 and 48 positions (a padded position kept), cached.

    Only a batch longer than the last probe may fill the cache (a shorter one has no 48 positions to copy).
    """
    cache = _PROBES.setdefault(model, {})
    key = _probe_key(model, batch)
    if key not in cache:
        counts = []
        for n in PROBE_LENGTHS:
            mask = None
            if batch.mask is not None:  # keep a padded position: transformers drops all-ones masks (no mask tensors)
                mask = batch.mask[:, :n].clone()
                mask[0, -1] = 0 if bool(mask.all()) else mask[0, -1]
            # copies, not views: a view's storage is the whole batch's, which would be counted at its length
            embeds, positions = batch.embeds[:, :n].clone(), batch.positions[:, :n].clone()
            counts.append(activation_bytes(model, Padded(embeds, mask, positions, batch.offsets)))
        cache[key] = counts
    return cache[key]


def estimated_activation_bytes(model: Any, batch: Padded) -> int:
    """`activation_bytes` of ``batch``, from the counts of its first 16, 32 and 48 positions (a quadratic).

    The saved bytes of a causal LM forward are a quadratic in the length (per-token tensors, and per-layer
    T × T attention weights and masks for eager attention), so three counts fix them; probing short prefixes
    keeps the probe's memory (which the allocator may keep after it is freed) and time small. The counts are
    cached per model (`_probe_counts`) and read at any length from 16 on; a batch of at most 48 positions is
    counted directly until a longer one has filled the cache.
    """
    length = batch.embeds.shape[1]
    cached = _PROBES.get(model, {}).get(_probe_key(model, batch))
    if length < PROBE_LENGTHS[0] or (length <= PROBE_LENGTHS[-1] and cached is None):
        return activation_bytes(model, batch)
    counts = cached or _probe_counts(model, batch)
    total = 0.0  # the Lagrange form of the quadratic through the three counts, at `length`
    for i, (x_i, y_i) in enumerate(zip(PROBE_LENGTHS, counts)):
        weight = 1.0
        for j, x_j in enumerate(PROBE_LENGTHS):
            if j != i:
                weight *= (length - x_j) / (x_i - x_j)
        total += weight * y_i
    return max(round(total), counts[0])
