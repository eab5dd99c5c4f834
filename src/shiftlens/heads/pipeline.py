"""Model-level head explanation: stream layers one at a time and store each as a resumable unit.

A model given as safetensors files (a local directory, a GGUF converted once, or a `LoadedModel` with
``weights_dir``) is read per tensor, so memory stays near the embeddings plus one layer's W_q and W_k.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from shiftlens.architecture import attention_qk, geometry, input_embeddings
from shiftlens.errors import ShiftlensError
from shiftlens.heads.cooccurrence import parse_spec, word_vectors
from shiftlens.heads.core import PairFilter, explain_layer, word_thresholds
from shiftlens.heads.records import layer_table, unit_name, write_outputs
from shiftlens.models import LoadedModel, weight_source
from shiftlens.options import check_layers
from shiftlens.progress import progress
from shiftlens.storage import RunDirectory, atomic_write_json, file_sha256
from shiftlens.vocabulary import Vocabulary, load_vocabulary

METHOD_VERSION = 1


class HeadsError(ShiftlensError, ValueError):
    """Bad settings for a head explanation (layers out of range, bad top-k, ...)."""


def method_inputs(
    vocabulary: Vocabulary, source: Any, config: Any, params: dict[str, Any], device: str = "cpu"
) -> tuple[torch.Tensor, PairFilter | None, dict[str, Any]]:
    """Word vectors (float64, on ``device``), the co-occurrence pair filter and its manifest entry.

    ``params`` are a run's recorded parameters (``cooccurrence``, ``reference_words``, ``z``), so a
    recomputation (the null baseline) rebuilds exactly what the run used.
    """
    words = vocabulary.vectors(input_embeddings(source, config)).double().to(device)
    vectors = word_vectors(params["cooccurrence"], vocabulary.words)
    if vectors is None:
        return words, None, {"backend": "none", "spec": params["cooccurrence"]}
    reference = torch.arange(min(params["reference_words"], len(vocabulary)))
    thresholds = word_thresholds(vectors.vectors, vectors.present, reference, params["z"])
    return words, PairFilter(vectors.vectors.to(device), thresholds.to(device)), vectors.manifest()


def explain_heads(
    model: str | LoadedModel,
    vocab: str | Path,
    out: str | Path,
    *,
    top_k: int = 100,
    cooccurrence: str = "ppmi:wordnet",
    layers: list[int] | None = None,
    min_frequency: float | None = None,
    alphabetic: bool = False,
    top_n: int | None = None,
    reference_words: int = 3000,
    z: float = 1.96,
    max_pairs: int | None = None,
    device: str = "cpu",
    gguf_file: str | None = None,
    adapter: str | None = None,
    trust_remote_code: bool = False,
) -> dict[str, Any]:
    """Explain every attention head of ``layers`` (default all) with word pairs; resumable per layer.

    Writes units, ``heads.parquet`` and ``heads.tsv`` under ``out`` and returns a summary with the
    layers computed in this call and those found finished.
    """
    if top_k < 1 or (max_pairs is not None and max_pairs < 1) or reference_words < 1:
        raise HeadsError("--top-k, --max-pairs and --reference-words must be at least 1")
    parse_spec(cooccurrence)
    source, config, tokenizer, identity = weight_source(
        model, gguf_file=gguf_file, adapter=adapter, trust_remote_code=trust_remote_code
    )
    vocabulary = load_vocabulary(vocab, tokenizer, min_frequency=min_frequency, alphabetic=alphabetic, top_n=top_n)
    layers = check_layers(layers, geometry(config).n_layers)
    params = {
        "method_version": METHOD_VERSION,
        "model": identity["name"],
        "weight_hash": identity["weight_hash"],
        "vocab_sha256": file_sha256(vocab),
        "filters": {"min_frequency": min_frequency, "alphabetic": alphabetic, "top_n": top_n},
        "top_k": top_k,
        "cooccurrence": cooccurrence,
        "reference_words": reference_words,
        "z": z,
        "max_pairs": max_pairs,
    }
    info = {"model_info": identity, "vocabulary": {"path": str(vocab), **vocabulary.manifest()}}
    with RunDirectory(out, "heads", params, info) as run:
        atomic_write_json(run.path / "words.json", vocabulary.words)
        todo = [layer for layer in layers if not run.has_unit(unit_name(layer))]
        if todo:
            words, pair_filter, cooc_manifest = method_inputs(vocabulary, source, config, params, device)
            run.update_manifest(cooccurrence=cooc_manifest)
            for layer in progress(todo, total=len(todo), desc="heads", unit="layer"):
                wq, wk = attention_qk(source, config, layer)
                result = explain_layer(words, wq, wk, top_k, pair_filter, max_pairs)
                run.write_unit(unit_name(layer), {"layer": layer, "n_pairs": len(result.pair_dim)}, result.arrays())
        units = [run.read_unit(name) for name in run.unit_names()]
        units.sort(key=lambda unit: unit[0]["layer"])
        tables = [layer_table(identity["name"], meta["layer"], arrays, vocabulary.words) for meta, arrays in units]
        parquet, tsv = write_outputs(run.path, tables)
        summary = {
            "layers_done": [meta["layer"] for meta, _ in units],
            "computed_layers": todo,
            "skipped_layers": [layer for layer in layers if layer not in todo],
            "n_pairs": sum(meta["n_pairs"] for meta, _ in units),
            "n_words": len(vocabulary),
            "n_words_skipped": len(vocabulary.skipped),
            "cooccurrence": run.manifest.get("cooccurrence"),
        }
        run.update_manifest(summary=summary)
    return {**summary, "parquet": str(parquet), "tsv": str(tsv)}
