"""Streaming FFN runner: one layer's down-projection in memory at a time, one unit of the run engine per layer."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from shiftlens.architecture import ffn_down_rows, geometry, output_embeddings
from shiftlens.config import identity, summary
from shiftlens.distributed import Launch
from shiftlens.errors import ShiftlensError
from shiftlens.ffn.core import explain_layer
from shiftlens.ffn.records import KIND, read_ffn_run, write_tables
from shiftlens.ffn.rotation import null_angles
from shiftlens.ffn.settings import FfnSettings
from shiftlens.ffn.sizing import RULE, resolve_components
from shiftlens.models import LoadedModel, ModelSpec, compute_device, weight_source
from shiftlens.nulls import seeded_generators
from shiftlens.options import check_layers
from shiftlens.progress import progress
from shiftlens.runs import VOCABULARY_FILE, Unit, UnitData, execute, model_key, placed
from shiftlens.runs.layers import VocabularyLayerJob
from shiftlens.storage import RunDirectory, Shard, file_sha256
from shiftlens.vocabulary import load_vocabulary, read_word_list


class FfnJob(VocabularyLayerJob):
    """The FFN run of one loaded model: one unit per layer, ``concepts.parquet`` and ``concepts.tsv`` at the end."""

    kind, noun = KIND, "layer"

    def __init__(self, model: ModelSpec | LoadedModel, vocab: str | Path, settings: FfnSettings):
        opened = weight_source(model)  # a spec of a safetensors model is read per tensor, never loaded whole
        self.source, self.config, self.vocab = opened.weights, opened.config, vocab
        self.device = compute_device(model.device)
        shape = geometry(self.config)
        self.components = resolve_components(settings.components, shape.hidden)
        self.top_k = settings.top_k
        self.layers = check_layers(None if settings.layers is None else list(settings.layers), shape.n_layers)
        self.vocabulary = load_vocabulary(vocab, opened.tokenizer, top_n=settings.vocab_top)
        self.params: dict[str, Any] = {
            **identity(settings),
            "components": self.components,
            "vocab_sha256": file_sha256(vocab),
            "model": model_key(opened.identity),
        }
        self.info = {
            "model": opened.identity,
            "vocabulary": {"file": VOCABULARY_FILE, "path": str(vocab), **self.vocabulary.manifest()},
            "summary": summary(settings),
            "model_layers": shape.n_layers,
            "hidden": shape.hidden,
            "components_rule": RULE if settings.components is None else "given (--components)",
            "sign_rule": "each component's largest-|score| vocabulary word has a positive score",
            "scores": "unit component · L2-normalised mean unembedding row of each word",
        }

    def prepare(self, todo: Sequence[Unit]) -> None:
        """The vocabulary's unembedding vectors, shared by every layer."""
        unembed = output_embeddings(self.source, self.config).to(self.device)
        self.word_vectors = self.vocabulary.vectors(unembed)

    def compute(self, unit: Unit) -> UnitData:
        """One layer's principal components and their top words."""
        layer = int(unit.name.rpartition("-")[2])
        rows = ffn_down_rows(self.source, self.config, layer).to(self.device)
        result = explain_layer(rows, self.word_vectors, self.components, self.top_k)
        arrays = {
            "components": result.pca.components.float().cpu().numpy(),
            "explained_variance_ratio": result.pca.explained_variance_ratio.cpu().numpy(),
            "explained_variance": result.pca.explained_variance.cpu().numpy(),
            "top_indices": result.top_indices.cpu().numpy().astype(np.int64),
            "top_scores": result.top_scores.float().cpu().numpy(),
        }
        meta = {"layer": layer, "n_neurons": rows.shape[0], "hidden": rows.shape[1]}
        del rows, result
        if self.device.startswith("cuda"):
            torch.cuda.empty_cache()
        return meta, arrays

    def finish(self, run: RunDirectory, failed: dict[str, str]) -> None:
        """The tables over every stored layer (a run extended by more layers lists them all)."""
        write_tables(read_ffn_run(run.path))


def explain_ffn(
    model: ModelSpec | str | LoadedModel,
    vocab: str | Path,
    out: str | Path,
    settings: FfnSettings | None = None,
    *,
    shard: Shard | None = None,
    launch: Launch | None = None,
    force: bool = False,
) -> Path:
    """Explain every (or each given) layer's FFN: PCA components, variance ratios, top vocabulary words.

    ``settings.components`` is R, the components kept per layer: None sizes it to the hidden size
    (`shiftlens.ffn.sizing`); more than the hidden size is refused. ``layers`` is not part of a run's
    identity: a rerun with more layers extends the run and the tables list every stored layer. Writes
    ``concepts.parquet`` and ``concepts.tsv``; returns ``out``. The PCA runs on the model's device;
    ``shard`` and ``launch`` split the layers across processes (`shiftlens.runs`); ``force`` deletes a run
    stored in ``out`` first.
    """
    settings = settings or FfnSettings()
    read_word_list(vocab)  # a missing or empty word list fails before the model loads
    spec = placed(ModelSpec(model) if isinstance(model, str) else model, shard, launch)

    def setup() -> FfnJob:
        return FfnJob(spec, vocab, settings)

    return execute(setup, out, shard=shard, launch=launch, device=compute_device(spec.device), force=force)


def rotation_null(
    base: LoadedModel,
    tuned: LoadedModel,
    layers: list[int],
    components: int,
    draws: int,
    *,
    seed: int = 0,
    device: str = "cpu",
) -> dict[int, list[float]]:
    """Per layer, ``draws`` null mean principal angles: base vs base + `perturb_like`(base, tuned) (`null_angles`).

    Draw d of layer l uses the generator seeded ``seed + l · draws + d``, so every draw is reproducible and
    no two share noise. One layer's two down-projections are in memory at a time.
    """
    if draws < 1:
        raise ShiftlensError(f"--null-draws must be at least 1, got {draws}")
    base_config, tuned_config = base.model.config, tuned.model.config
    if geometry(base_config) != geometry(tuned_config):
        raise ShiftlensError(f"{base.name} and {tuned.name} differ in shape; a rotation null needs one architecture")
    base_source, tuned_source = weight_source(base).weights, weight_source(tuned).weights
    angles = {}
    for layer in progress(layers, desc="ffn rotation null", unit="layer"):
        base_rows = ffn_down_rows(base_source, base_config, layer).to(device)
        tuned_rows = ffn_down_rows(tuned_source, tuned_config, layer).to(device)
        generators = seeded_generators(draws, device, start=seed + layer * draws)
        angles[layer] = null_angles(base_rows, tuned_rows, components, generators)
        del base_rows, tuned_rows
    return angles
