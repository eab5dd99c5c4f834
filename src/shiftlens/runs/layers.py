"""Runs with one unit per model layer (heads, FFN, annotation): the unit names and units, declared once."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from shiftlens.runs.engine import Job, Unit
from shiftlens.runs.manifest import store_vocabulary
from shiftlens.storage import RunDirectory, Shard
from shiftlens.vocabulary import Vocabulary


def layer_unit(layer: int) -> str:
    """The run-directory unit holding one layer."""
    return f"layer-{layer:04d}"


def layer_units(layers: Iterable[int]) -> list[Unit]:
    """One unit per layer, in the given order."""
    return [Unit(layer_unit(layer), layer_unit(layer)) for layer in layers]


class VocabularyLayerJob(Job):
    """A per-layer job over vocabulary words, which it stores in the run (the same words on a resume)."""

    layers: list[int]
    vocabulary: Vocabulary
    vocab: str | Path

    def open(self, out: Path, shard: Shard | None = None, force: bool = False) -> RunDirectory:
        """The run directory, its words stored."""
        run = super().open(out, shard, force)
        store_vocabulary(run, self.vocabulary.words, self.vocab)
        return run

    def units(self) -> list[Unit]:
        """One unit per chosen layer."""
        return layer_units(self.layers)
