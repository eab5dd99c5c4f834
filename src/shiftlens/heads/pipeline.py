"""Model-level head explanation: stream layers one at a time and store each as a resumable unit.

A model given as safetensors files (a local directory, a GGUF converted once, or a `LoadedModel` with
``weights_dir``) is read per tensor, so memory stays near the embeddings plus one layer's W_q and W_k.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from shiftlens.architecture import attention_qk, geometry, input_embeddings, spec_for
from shiftlens.heads.cooccurrence import word_vectors
from shiftlens.heads.core import PairFilter, explain_layer, word_thresholds
from shiftlens.heads.records import layer_table, unit_name, write_outputs
from shiftlens.heads.settings import HeadsError, HeadsSettings
from shiftlens.loading import (
    LoadedModel,
    file_fingerprint,
    gguf_to_safetensors,
    load_config,
    load_model,
    load_tokenizer,
    resolve,
)
from shiftlens.models import ModelSpec
from shiftlens.options import check_layers, compute_device
from shiftlens.progress import progress
from shiftlens.storage import RunDirectory, atomic_write_json, file_sha256
from shiftlens.vocabulary import Vocabulary, load_vocabulary
from shiftlens.weights import ModuleWeights, SafetensorsWeights

METHOD_VERSION = 1
__all__ = ["HeadsError", "HeadsSettings", "explain_heads", "method_inputs", "open_weights"]


def open_weights(model: ModelSpec | str | LoadedModel) -> tuple[Any, Any, Any, dict[str, Any]]:
    """(weight source, config, tokenizer, identity) of a model, streaming from safetensors when possible.

    A name or path that resolves to a local safetensors directory is opened without building the
    model; hub ids, ``.bin`` checkpoints and adapters go through `load_model`.
    """
    if isinstance(model, str):
        model = ModelSpec(model)
    if isinstance(model, LoadedModel):
        weights_dir = None if model.extra.get("adapter") else model.weights_dir
        source = SafetensorsWeights(weights_dir, model.model.config) if weights_dir else ModuleWeights(model.model)
        return source, model.model.config, model.tokenizer, model.manifest()
    name, gguf_file, adapter, trust_remote_code = model.name, model.gguf_file, model.adapter, model.trust_remote_code
    path, gguf = resolve(name, gguf_file)
    if gguf is not None:
        path = str(gguf_to_safetensors(Path(path), gguf))
    directory = Path(path)
    if adapter is None and directory.is_dir() and any(directory.glob("*.safetensors")):
        config = load_config(directory, trust_remote_code=trust_remote_code)
        tokenizer = load_tokenizer(str(directory), trust_remote_code=trust_remote_code)
        spec_for(config)  # unsupported families fail here, before any work
        identity = {
            "name": name,
            "weight_hash": file_fingerprint(sorted(directory.glob("*.safetensors"))),
            "model_type": config.model_type,
        }
        return SafetensorsWeights(directory, config), config, tokenizer, identity
    loaded = load_model(name, gguf_file=gguf_file, adapter=adapter, trust_remote_code=trust_remote_code)
    return ModuleWeights(loaded.model), loaded.model.config, loaded.tokenizer, loaded.manifest()


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
    model: ModelSpec | str | LoadedModel,
    vocab: str | Path,
    out: str | Path,
    settings: HeadsSettings | None = None,
) -> dict[str, Any]:
    """Explain every attention head of ``settings.layers`` (default all) with word pairs; resumable per layer.

    The matrix work runs on the model's device (``auto``: the GPU if there is one). Writes units,
    ``heads.parquet`` and ``heads.tsv`` under ``out`` and returns a summary with the layers computed in
    this call and those found finished.
    """
    s = settings or HeadsSettings()
    device = compute_device(model.device if not isinstance(model, str) else "cpu")
    source, config, tokenizer, identity = open_weights(model)
    min_frequency, alphabetic, top_n = s.min_frequency, s.alphabetic, s.top_n
    vocabulary = load_vocabulary(vocab, tokenizer, min_frequency=min_frequency, alphabetic=alphabetic, top_n=top_n)
    layers = check_layers(None if s.layers is None else list(s.layers), geometry(config).n_layers)
    params = {
        "method_version": METHOD_VERSION,
        "model": identity["name"],
        "weight_hash": identity["weight_hash"],
        "vocab_sha256": file_sha256(vocab),
        "filters": {"min_frequency": min_frequency, "alphabetic": alphabetic, "top_n": top_n},
        "top_k": s.top_k,
        "cooccurrence": s.cooccurrence,
        "reference_words": s.reference_words,
        "z": s.z,
        "max_pairs": s.max_pairs,
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
                result = explain_layer(words, wq, wk, s.top_k, pair_filter, s.max_pairs)
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
