"""Streaming FFN runner: one layer's down-projection in memory at a time, one resumable unit per layer."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import torch

from shiftlens.architecture import ffn_down_rows, geometry, output_embeddings
from shiftlens.errors import ShiftlensError
from shiftlens.ffn.core import explain_layer
from shiftlens.ffn.records import KIND, VOCABULARY_FILE, read_ffn_run, unit_name, write_tables
from shiftlens.loading import LoadedModel
from shiftlens.options import check_layers
from shiftlens.progress import progress
from shiftlens.storage import RunDirectory, atomic_write_json, file_sha256
from shiftlens.vocabulary import load_vocabulary
from shiftlens.weights import ModuleWeights, SafetensorsWeights


def weight_source(loaded: LoadedModel) -> ModuleWeights | SafetensorsWeights:
    """Per-tensor reads from the model's safetensors files when it has them, else from the loaded model."""
    config = loaded.model.config
    if loaded.weights_dir is not None and not loaded.extra.get("adapter"):
        return SafetensorsWeights(loaded.weights_dir, config)
    return ModuleWeights(loaded.model)


def explain_ffn(
    loaded: LoadedModel,
    vocab: str | Path,
    out: str | Path,
    *,
    components: int = 300,
    top_k: int = 50,
    layers: list[int] | None = None,
    vocab_top: int | None = None,
    device: str = "cpu",
) -> Path:
    """Explain every (or each given) layer's FFN: PCA components, variance ratios, top vocabulary words.

    Resumable: finished layers are kept and skipped on a rerun with the same parameters. Writes
    ``concepts.parquet`` and ``concepts.tsv`` once all layers are done; returns the run directory.
    """
    if components < 1 or top_k < 1:
        raise ShiftlensError("--components and --top-k must be at least 1")
    config = loaded.model.config
    chosen = check_layers(layers, geometry(config).n_layers)
    vocabulary = load_vocabulary(vocab, loaded.tokenizer, top_n=vocab_top)
    params: dict[str, Any] = {
        "model": loaded.name,
        "weight_hash": loaded.weight_hash,
        "adapter": loaded.extra.get("adapter"),
        "dtype": loaded.dtype,
        "vocab_sha256": file_sha256(vocab),
        "vocab_top": vocab_top,
        "components": components,
        "top_k": top_k,
        "layers": chosen,
    }
    info = {
        "model_info": loaded.manifest(),
        "vocabulary": {"path": str(vocab), **vocabulary.manifest()},
        "model_layers": geometry(config).n_layers,
        "sign_rule": "each component's largest-|score| vocabulary word has a positive score",
        "scores": "unit component · L2-normalised mean unembedding row of each word",
    }
    source = weight_source(loaded)
    with RunDirectory(out, KIND, params, info) as run:
        words_path = run.path / VOCABULARY_FILE
        if not words_path.exists():
            atomic_write_json(words_path, vocabulary.words)
        elif json.loads(words_path.read_text(encoding="utf-8")) != vocabulary.words:
            raise ShiftlensError(f"{words_path} lists other words than {vocab} gives now; use a new --out")
        todo = [layer for layer in chosen if not run.has_unit(unit_name(layer))]
        if todo:
            unembed = output_embeddings(source, config).to(device)
            word_vectors = vocabulary.vectors(unembed)
            del unembed
            for layer in progress(todo, desc="ffn PCA", unit="layer"):
                rows = ffn_down_rows(source, config, layer).to(device)
                result = explain_layer(rows, word_vectors, components, top_k)
                run.write_unit(
                    unit_name(layer),
                    {"layer": layer, "n_neurons": rows.shape[0], "hidden": rows.shape[1]},
                    {
                        "components": result.pca.components.float().cpu().numpy(),
                        "explained_variance_ratio": result.pca.explained_variance_ratio.cpu().numpy(),
                        "explained_variance": result.pca.explained_variance.cpu().numpy(),
                        "top_indices": result.top_indices.cpu().numpy().astype(np.int64),
                        "top_scores": result.top_scores.float().cpu().numpy(),
                    },
                )
                del rows, result
                if device.startswith("cuda"):
                    torch.cuda.empty_cache()
        write_tables(read_ffn_run(run.path))
        run.update_manifest(complete=True, layers_done=len(chosen))
    return Path(out)
