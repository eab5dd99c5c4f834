"""The heads run format: per-layer units turned into ``heads.parquet`` and a paper-style ``heads.tsv``.

Parquet: one row per (layer, head, dimension) with columns model, layer, head, dim, rank, energy and
pairs (list of {query, key, similarity, score}, strongest first); rows ordered by layer, head, rank.
TSV: ``layer head rank dim energy pairs`` with pairs written ``key=query`` (the authors' order) joined by ``|||``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from shiftlens.errors import ShiftlensError
from shiftlens.runs.manifest import check_kind
from shiftlens.storage import atomic_write_parquet, atomic_write_text

PARQUET = "heads.parquet"
TSV = "heads.tsv"
PAIR_TYPE = pa.struct(
    [("query", pa.string()), ("key", pa.string()), ("similarity", pa.float64()), ("score", pa.float64())]
)


class HeadsRunError(ShiftlensError, ValueError):
    """A heads output directory that cannot be read."""


def layer_table(model: str, layer: int, arrays: dict[str, np.ndarray], words: list[str]) -> pa.Table:
    """One layer's unit arrays (see `HeadPairs`) as Parquet rows ordered by head then rank."""
    energy, rank = arrays["energy"], arrays["rank"]
    n_heads, head_dim = energy.shape
    head, dim = arrays["pair_head"], arrays["pair_dim"]
    row_of_pair = head * head_dim + rank[head, dim]  # row index once rows are ordered by (head, rank)
    order = np.argsort(row_of_pair, kind="stable")
    counts = np.bincount(row_of_pair, minlength=n_heads * head_dim)
    offsets = np.r_[0, np.cumsum(counts)].astype(np.int32)
    vocab = np.array(words, dtype=object)
    pairs = pa.StructArray.from_arrays(
        [
            pa.array(vocab[arrays["pair_query"][order]], pa.string()),
            pa.array(vocab[arrays["pair_key"][order]], pa.string()),
            pa.array(arrays["pair_similarity"][order], pa.float64()),
            pa.array(arrays["pair_score"][order], pa.float64()),
        ],
        fields=list(PAIR_TYPE),
    )
    dim_of_row = np.argsort(rank, axis=1, kind="stable")  # row (h, r) holds the dimension of rank r
    n_rows = n_heads * head_dim
    return pa.table(
        {
            "model": pa.array([model] * n_rows, pa.string()),
            "layer": pa.array(np.full(n_rows, layer), pa.int32()),
            "head": pa.array(np.repeat(np.arange(n_heads), head_dim), pa.int32()),
            "dim": pa.array(dim_of_row.ravel(), pa.int32()),
            "rank": pa.array(np.tile(np.arange(head_dim), n_heads), pa.int32()),
            "energy": pa.array(np.take_along_axis(energy, dim_of_row, axis=1).ravel(), pa.float64()),
            "pairs": pa.ListArray.from_arrays(pa.array(offsets), pairs),
        }
    )


def write_outputs(directory: Path, tables: list[pa.Table]) -> tuple[Path, Path]:
    """Write the Parquet and TSV files of a run (atomically) and return their paths."""
    table = pa.concat_tables(tables)
    atomic_write_parquet(directory / PARQUET, table)
    pairs = table["pairs"].combine_chunks()
    flat = pairs.flatten()
    texts = pc.binary_join_element_wise(flat.field("key"), flat.field("query"), "=").to_numpy(zero_copy_only=False)
    offsets = pairs.offsets.to_numpy()
    columns = [table[name].to_numpy() for name in ("layer", "head", "rank", "dim", "energy")]
    lines = ["layer\thead\trank\tdim\tenergy\tpairs"]
    for i, (layer, head, rank, dim, energy) in enumerate(zip(*columns)):
        joined = "|||".join(texts[offsets[i] : offsets[i + 1]])
        lines.append(f"{layer}\t{head}\t{rank}\t{dim}\t{energy:.6g}\t{joined}")
    atomic_write_text(directory / TSV, "\n".join(lines) + "\n")
    return directory / PARQUET, directory / TSV


def read_pair_rows(directory: str | Path) -> dict[str, np.ndarray]:
    """Flat pair columns of a run's Parquet: layer, head, dim, query, key (one entry per pair).

    ``heads`` lists every (layer, head) of the run, pairs or not, as an (n, 2) array.
    """
    path = Path(directory) / PARQUET
    if (Path(directory) / "manifest.json").exists():
        check_kind(directory, "heads")
    if not path.exists():
        raise HeadsRunError(f"{path} not found: is {directory} a finished `shiftlens heads` output directory?")
    try:
        table = pq.read_table(path, columns=["layer", "head", "dim", "pairs"])
    except (pa.ArrowInvalid, KeyError) as exc:
        raise HeadsRunError(f"{path} is not a heads Parquet file: {exc}") from exc
    parents = pc.list_parent_indices(table["pairs"]).to_numpy()
    flat = pc.list_flatten(table["pairs"])
    heads = np.unique(np.stack([table["layer"].to_numpy(), table["head"].to_numpy()], axis=1), axis=0)
    return {
        "heads": heads,
        "layer": table["layer"].to_numpy()[parents],
        "head": table["head"].to_numpy()[parents],
        "dim": table["dim"].to_numpy()[parents],
        "query": np.asarray(pc.struct_field(flat, "query").to_pylist(), dtype=object),
        "key": np.asarray(pc.struct_field(flat, "key").to_pylist(), dtype=object),
    }


def unit_rows(layer: int, arrays: dict[str, np.ndarray], words: list[str]) -> dict[str, np.ndarray]:
    """One layer's unit arrays (see `HeadPairs`) as the flat pair columns `read_pair_rows` returns."""
    n_heads = arrays["energy"].shape[0]
    vocab = np.array(words, dtype=object)
    return {
        "heads": np.stack([np.full(n_heads, layer), np.arange(n_heads)], axis=1),
        "layer": np.full(len(arrays["pair_head"]), layer),
        "head": arrays["pair_head"],
        "dim": arrays["pair_dim"],
        "query": vocab[arrays["pair_query"]],
        "key": vocab[arrays["pair_key"]],
    }
