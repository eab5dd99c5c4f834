"""The weight-delta map of a base/tuned pair: per layer, module and attention head, streamed tensor by tensor.

Both models are read one tensor at a time (`shiftlens.architecture` names them), so at most two copies of one
weight are resident. The tuned side is a second checkpoint of the same architecture, or a LoRA adapter read
as low-rank updates (`shiftlens.diff.lora`) and never merged.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import torch

from shiftlens.architecture import (
    WeightSource,
    geometry,
    layer_matrices,
    layer_weight_names,
    model_matrices,
    model_weight_names,
    spec_for,
)
from shiftlens.diff.delta import Delta, Difference, LowRank, delta_stats, restrict
from shiftlens.errors import ShiftlensError, warn

Row = dict[str, Any]
PER_HEAD_ROWS = ("q", "k", "v")  # head h owns rows h·d … (h+1)·d; of o it owns those columns


class WeightDiffError(ShiftlensError, ValueError):
    """Two checkpoints that cannot be compared tensor by tensor (another architecture, shape or a missing tensor)."""


def head_slices(module: str, shape: tuple[int, ...], head_dim: int) -> Iterator[tuple[int, tuple[slice, slice]]]:
    """(head, (rows, columns)) of a q/k/v projection's rows or an o projection's columns; nothing otherwise."""
    if module in PER_HEAD_ROWS:
        count, block = shape[0] // head_dim, lambda s: (s, slice(None))
    elif module == "o":
        count, block = shape[1] // head_dim, lambda s: (slice(None), s)
    else:
        return
    for head in range(count):
        yield head, block(slice(head * head_dim, (head + 1) * head_dim))


def _stats(base: torch.Tensor, delta: Delta, generator: torch.Generator | None) -> dict[str, Any]:
    """`delta_stats`, and beside it (with a ``generator``) the rank and angle of noise as large as ΔW, row by row."""
    observed, null = delta_stats(base, delta, generator=generator)
    stats = observed.to_json()
    if null is not None:
        stats.update(effective_rank_null=null.effective_rank, principal_angle_null_deg=null.principal_angle_deg)
    return stats


def _rows(
    layer: int, module: str, base: torch.Tensor, delta: Delta, head_dim: int, generator: torch.Generator | None
) -> list[Row]:
    """The module's row and, for attention projections, one row per head."""
    rows = [{"layer": layer, "module": module, "head": -1, **_stats(base, delta, generator)}]
    for head, (r, c) in head_slices(module, tuple(base.shape), head_dim):
        rows.append(
            {"layer": layer, "module": module, "head": head, **_stats(base[r, c], restrict(delta, r, c), generator)}
        )
    return rows


def _names(source: WeightSource, config: Any, layer: int | None) -> dict[str, str]:
    return model_weight_names(source, config) if layer is None else layer_weight_names(config, layer)


def check_same_tensors(base: WeightSource, tuned: WeightSource, config: Any) -> None:
    """Before any work: every tensor the map reads is in both checkpoints, and the tuned one has no extra layer."""
    n_layers = geometry(config).n_layers
    for layer in [None, *range(n_layers)]:
        for name in _names(base, config, layer).values():
            for role, source in (("base", base), ("tuned", tuned)):
                if not source.has(name):
                    raise WeightDiffError(f"{name} is missing from the {role} checkpoint; not the same architecture")
    extra = [name for name in layer_weight_names(config, n_layers).values() if tuned.has(name)]
    if extra:
        raise WeightDiffError(f"the tuned checkpoint has {extra[0]}, beyond the base's {n_layers} layers")


def _dense_deltas(
    base: WeightSource, tuned: WeightSource, config: Any, allow_different_shapes: bool
) -> Callable[[int | None], dict]:
    check_same_tensors(base, tuned, config)

    def deltas(layer: int | None) -> dict[str, tuple[torch.Tensor, Delta]]:
        read = (lambda s: model_matrices(s, config)) if layer is None else (lambda s: layer_matrices(s, config, layer))
        try:
            before, after = read(base), read(tuned)
        except KeyError as exc:
            raise WeightDiffError(f"a tensor is missing from one checkpoint: {exc.args[0]}") from exc
        names, out = _names(base, config, layer), {}
        for module, weight in before.items():
            other = after[module]
            if weight.shape == other.shape:
                out[module] = (weight, Difference(other, weight))
                continue
            name = names.get(module, f"{'model' if layer is None else f'layer {layer}'} {module}")
            shapes = f"base {tuple(weight.shape)} vs tuned {tuple(other.shape)}"
            if not allow_different_shapes:
                raise WeightDiffError(
                    f"{name}: {shapes}; not the same architecture (--allow-different-shapes skips it)"
                )
            warn(f"{name} left out of the weight map: {shapes}")
        return out

    return deltas


def _lora_deltas(base: WeightSource, updates: dict[str, LowRank], config: Any) -> Callable[[int | None], dict]:
    spec = spec_for(config)
    if spec.qkv is not None or spec.conv1d:
        raise WeightDiffError(f"LoRA deltas of the fused or Conv1D projections of {spec.family} are not read; merge it")
    layers = range(geometry(config).n_layers)
    names_of = {
        None: model_weight_names(base, config),
        **{layer: layer_weight_names(config, layer) for layer in layers},
    }
    readable = {name for names in names_of.values() for name in names.values()}
    unknown = sorted(set(updates) - readable)
    if unknown:
        raise WeightDiffError(f"the adapter updates {unknown[0]}, which the model does not have ({len(unknown)} such)")

    def deltas(layer: int | None) -> dict[str, tuple[torch.Tensor, Delta]]:
        matrices = model_matrices(base, config) if layer is None else layer_matrices(base, config, layer)
        names = names_of[layer]
        out: dict[str, tuple[torch.Tensor, Delta]] = {}
        for module, weight in matrices.items():
            update = updates.get(names[module])
            if update is not None and (update.b.shape[0], update.a.shape[1]) != tuple(weight.shape):
                shape = f"{update.b.shape[0]}×{update.a.shape[1]}"
                raise WeightDiffError(f"the adapter's {names[module]} is {shape}, the model's {tuple(weight.shape)}")
            out[module] = (weight, update if update is not None else Difference(weight, weight))
        return out

    return deltas


def weight_map(
    base: WeightSource,
    config: Any,
    tuned: WeightSource | dict[str, LowRank],
    null_seed: int | None = 0,
    progress: Callable[[int], None] | None = None,
    allow_different_shapes: bool = False,
) -> list[Row]:
    """Every row of the map: the model-level weights (layer −1), then each layer's modules and heads.

    With ``null_seed`` each row also holds the effective rank and principal angle of noise as large as its ΔW,
    row by row (`shiftlens.nulls.perturb_like`, seeded): the relative size is the same by construction, so
    only a rank or rotation beyond the null's says the update has structure. Two checkpoints must hold the
    same tensors in the same shapes (`WeightDiffError` naming the first that differs, before any work where it
    can be told from the names); ``allow_different_shapes`` leaves tensors of other shapes out, with a warning.
    """
    generator = None if null_seed is None else torch.Generator().manual_seed(null_seed)
    geo = geometry(config)
    deltas = (
        _lora_deltas(base, tuned, config)
        if isinstance(tuned, dict)
        else _dense_deltas(base, tuned, config, allow_different_shapes)
    )
    rows: list[Row] = []
    for layer in [None, *range(geo.n_layers)]:
        for module, (weight, delta) in deltas(layer).items():
            rows += _rows(-1 if layer is None else layer, module, weight, delta, geo.head_dim, generator)
        if progress is not None and layer is not None:
            progress(layer)
    return rows
