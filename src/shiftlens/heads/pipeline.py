"""Model-level head explanation: stream layers one at a time and store each as a unit of the run engine.

A model given as safetensors files (a local directory, a GGUF converted once, or a `LoadedModel` with
``weights_dir``) is read per tensor, so memory stays near the embeddings plus one layer's W_q and W_k.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from shiftlens.architecture import attention_qk, geometry, input_embeddings
from shiftlens.config import identity, summary
from shiftlens.distributed import Launch
from shiftlens.heads.cooccurrence import word_vectors
from shiftlens.heads.core import PairFilter, explain_layer, word_thresholds
from shiftlens.heads.records import layer_table, write_outputs
from shiftlens.heads.settings import HeadsError, HeadsSettings
from shiftlens.models import LoadedModel, ModelSpec, compute_device, weight_source
from shiftlens.options import check_layers
from shiftlens.runs import VOCABULARY_FILE, Unit, UnitData, execute, model_key, placed
from shiftlens.runs.layers import VocabularyLayerJob
from shiftlens.storage import RunDirectory, Shard, file_sha256
from shiftlens.vocabulary import Vocabulary, load_vocabulary, read_word_list

METHOD_VERSION = 1
__all__ = ["HeadsError", "HeadsJob", "HeadsSettings", "explain_heads", "method_inputs"]


def method_inputs(
    vocabulary: Vocabulary, source: Any, config: Any, settings: HeadsSettings, device: str = "cpu"
) -> tuple[torch.Tensor, PairFilter | None, dict[str, Any]]:
    """Word vectors (float64, on ``device``), the co-occurrence pair filter and its manifest entry.

    ``settings`` are a run's (`HeadsSettings.from_params`), so a recomputation (the null baseline)
    rebuilds exactly what the run used.
    """
    words = vocabulary.vectors(input_embeddings(source, config)).double().to(device)
    vectors = word_vectors(settings.cooccurrence, vocabulary.words)
    if vectors is None:
        return words, None, {"backend": "none", "spec": settings.cooccurrence}
    reference = torch.arange(min(settings.reference_words, len(vocabulary)))
    thresholds = word_thresholds(vectors.vectors, vectors.present, reference, settings.z)
    return words, PairFilter(vectors.vectors.to(device), thresholds.to(device)), vectors.manifest()


class HeadsJob(VocabularyLayerJob):
    """The heads run of one model: one unit per layer, ``heads.parquet`` and ``heads.tsv`` at the end."""

    kind, noun = "heads", "layer"

    def __init__(self, model: ModelSpec | LoadedModel, vocab: str | Path, settings: HeadsSettings, device: str):
        self.source, self.config, tokenizer, record = weight_source(model)
        self.vocab, self.settings, self.device = vocab, settings, device
        s = settings
        self.vocabulary = load_vocabulary(
            vocab, tokenizer, min_frequency=s.min_frequency, alphabetic=s.alphabetic, top_n=s.top_n
        )
        self.layers = check_layers(None if s.layers is None else list(s.layers), geometry(self.config).n_layers)
        self.params = {"method_version": METHOD_VERSION, "vocab_sha256": file_sha256(vocab), **identity(s)}
        self.params["model"] = model_key(record)
        self.info = {
            "model": record,
            "vocabulary": {"file": VOCABULARY_FILE, "path": str(vocab), **self.vocabulary.manifest()},
            "summary": summary(s),
        }
        self.cooccurrence: dict[str, Any] | None = None

    def prepare(self, todo: Sequence[Unit]) -> None:
        """Word vectors and the pair filter, shared by every layer."""
        self.words, self.pair_filter, self.cooccurrence = method_inputs(
            self.vocabulary, self.source, self.config, self.settings, self.device
        )

    def compute(self, unit: Unit) -> UnitData:
        """One layer's head pairs."""
        layer = int(unit.name.rpartition("-")[2])
        wq, wk = attention_qk(self.source, self.config, layer)
        result = explain_layer(self.words, wq, wk, self.settings.top_k, self.pair_filter, self.settings.max_pairs)
        return {"layer": layer, "n_pairs": len(result.pair_dim)}, result.arrays()

    def finish(self, run: RunDirectory, failed: dict[str, str]) -> None:
        """The tables over every stored layer (a run extended by more layers lists them all)."""
        units = sorted((run.read_unit(name) for name in run.unit_names()), key=lambda unit: unit[0]["layer"])
        name = run.manifest["model"].get("name")
        write_outputs(
            run.path, [layer_table(name, meta["layer"], arrays, self.vocabulary.words) for meta, arrays in units]
        )
        if self.cooccurrence is None:  # a merge computed nothing: the backend's record, from its cache
            vectors = word_vectors(self.settings.cooccurrence, self.vocabulary.words)
            self.cooccurrence = (
                vectors.manifest() if vectors else {"backend": "none", "spec": self.settings.cooccurrence}
            )
        results = {
            "layers_done": [meta["layer"] for meta, _ in units],
            "n_pairs": sum(meta["n_pairs"] for meta, _ in units),
            "n_words": len(self.vocabulary),
            "n_words_skipped": len(self.vocabulary.skipped),
        }
        run.update_manifest(cooccurrence=self.cooccurrence, results=results)


def explain_heads(
    model: ModelSpec | str | LoadedModel,
    vocab: str | Path,
    out: str | Path,
    settings: HeadsSettings | None = None,
    *,
    shard: Shard | None = None,
    launch: Launch | None = None,
    force: bool = False,
) -> Path:
    """Explain every attention head of ``settings.layers`` (default all) with word pairs; one unit per layer.

    ``layers`` is not part of a run's identity: a rerun with more layers extends the run (the finished
    ones are kept) and the tables list every stored layer. The matrix work runs on the model's device
    (``auto``: the GPU if there is one). Writes ``heads.parquet`` and ``heads.tsv``; returns ``out``.
    ``shard`` and ``launch`` split the layers across processes (`shiftlens.runs`); ``force`` deletes a run
    stored in ``out`` first.
    """
    settings = settings or HeadsSettings()
    read_word_list(vocab)  # a missing or empty word list fails before the model loads
    spec = placed(ModelSpec(model) if isinstance(model, str) else model, shard, launch)
    device = compute_device(spec.device)
    job = lambda: HeadsJob(spec, vocab, settings, device)  # noqa: E731
    return execute(job, out, shard=shard, launch=launch, device=device, force=force)
