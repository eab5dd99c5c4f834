"""The FFN run format: per-layer units (components, ratios, top words) and the tables written at the end.

A run directory holds ``vocabulary.json`` (the words, in score-index order), one unit per layer
(``layer-NNNN``: safetensors arrays ``components`` R × hidden, ``explained_variance_ratio``,
``explained_variance``, ``top_indices`` and ``top_scores`` R × K) and, once complete,
``concepts.parquet`` and the paper-style ``concepts.tsv``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa

from shiftlens.errors import ShiftlensError
from shiftlens.runs.layers import layer_unit as unit_name
from shiftlens.runs.manifest import VOCABULARY_FILE, check_kind, read_vocabulary
from shiftlens.storage import atomic_write_parquet, atomic_write_text, read_units

KIND = "ffn"
__all__ = ["KIND", "VOCABULARY_FILE", "FfnRun", "LayerRecord", "read_ffn_run", "unit_name", "write_tables"]
PARQUET_FILE = "concepts.parquet"
TSV_FILE = "concepts.tsv"


class FfnRunError(ShiftlensError, ValueError):
    """A directory that is not a usable FFN run."""


@dataclass
class LayerRecord:
    """One layer of an FFN run, as stored."""

    layer: int
    components: np.ndarray
    explained_variance_ratio: np.ndarray
    top_indices: np.ndarray
    top_scores: np.ndarray


@dataclass
class FfnRun:
    """A finished (or partial) FFN run read back: manifest, vocabulary words and layers by index."""

    path: Path
    manifest: dict
    words: list[str]
    layers: dict[int, LayerRecord]

    @property
    def n_layers(self) -> int:
        """Depth of the model the run explains (from the manifest)."""
        return int(self.manifest["model_layers"])

    def top_words(self, layer: int, component: int, n: int | None = None) -> list[str]:
        """The top words of one component, strongest first."""
        indices = self.layers[layer].top_indices[component]
        return [self.words[i] for i in indices[:n]]


def read_ffn_run(path: str | Path) -> FfnRun:
    """Read an FFN run directory (refusing other kinds of runs with a clear error)."""
    path = Path(path)
    manifest = check_kind(path, KIND)
    words = read_vocabulary(path)
    layers = {}
    for _, meta, arrays in read_units(path):
        layers[meta["layer"]] = LayerRecord(
            meta["layer"],
            arrays["components"],
            arrays["explained_variance_ratio"],
            arrays["top_indices"],
            arrays["top_scores"],
        )
    if not layers:
        raise FfnRunError(f"{path} has no finished layer yet; run 'shiftlens ffn' to completion first")
    return FfnRun(path, manifest, words, dict(sorted(layers.items())))


def write_tables(run: FfnRun) -> None:
    """Write ``concepts.parquet`` (one row per layer and component) and the paper-style ``concepts.tsv``."""
    rows: dict[str, list] = {
        "layer": [],
        "component": [],
        "explained_variance_ratio": [],
        "words": [],
        "scores": [],
    }
    lines = ["layer\tcomponent\texplained_variance_ratio\ttop_words..."]
    for layer, record in run.layers.items():
        for component in range(record.components.shape[0]):
            words = [run.words[i] for i in record.top_indices[component]]
            ratio = float(record.explained_variance_ratio[component])
            rows["layer"].append(layer)
            rows["component"].append(component)
            rows["explained_variance_ratio"].append(ratio)
            rows["words"].append(words)
            rows["scores"].append(record.top_scores[component].astype(np.float32).tolist())
            lines.append("\t".join([str(layer), str(component), f"{ratio:.6g}", *words]))
    schema = pa.schema(
        [
            ("layer", pa.int32()),
            ("component", pa.int32()),
            ("explained_variance_ratio", pa.float64()),
            ("words", pa.list_(pa.string())),
            ("scores", pa.list_(pa.float32())),
        ]
    )
    atomic_write_parquet(run.path / PARQUET_FILE, pa.table(rows, schema=schema))
    atomic_write_text(run.path / TSV_FILE, "\n".join(lines) + "\n")
