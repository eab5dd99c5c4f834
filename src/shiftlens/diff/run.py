"""`diff_weights`: the weight-delta map of two models (or a model and its LoRA adapter) into ``weights.parquet``."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa

from shiftlens.atomic import atomic_write_parquet
from shiftlens.diff.lora import lora_updates
from shiftlens.diff.weights import Row, WeightDiffError, weight_map
from shiftlens.models import LoadedModel, ModelSpec, weight_source

WEIGHTS_FILE = "weights.parquet"


def weight_table(rows: list[Row]) -> pa.Table:
    """The map's rows as a table: layer (−1: outside the layers), module, head (−1: the whole module), statistics."""
    columns = list(rows[0])
    return pa.table({name: [row.get(name) for row in rows] for name in columns})


def diff_weights(
    base: ModelSpec | str | LoadedModel,
    tuned: ModelSpec | str | LoadedModel | None,
    out: str | Path,
    *,
    adapter: str | Path | None = None,
    null_seed: int | None = 0,
    allow_different_shapes: bool = False,
) -> Path:
    """The weight-delta map of ``base`` → ``tuned`` (or → ``base`` + ``adapter``, read as B·A) in OUT/weights.parquet.

    Both checkpoints are read tensor by tensor; give exactly one of ``tuned`` and ``adapter``. Tensors missing
    from one checkpoint or of another shape are refused by name (``allow_different_shapes``: shapes left out).
    """
    if (tuned is None) == (adapter is None):
        raise ValueError("give the tuned model or the adapter, not both or neither")
    opened = weight_source(ModelSpec(base) if isinstance(base, str) else base)
    if adapter is not None:
        other = lora_updates(adapter)
    else:
        other = weight_source(ModelSpec(tuned) if isinstance(tuned, str) else tuned).weights
    rows = weight_map(
        opened.weights, opened.config, other, null_seed=null_seed, allow_different_shapes=allow_different_shapes
    )
    if not rows:
        raise WeightDiffError("no tensor has the same shape in both checkpoints: there is nothing to compare")
    path = Path(out) / WEIGHTS_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_parquet(path, weight_table(rows))
    return path
