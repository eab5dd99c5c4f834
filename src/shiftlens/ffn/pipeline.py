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
from shiftlens.ffn.rotation import null_angles
from shiftlens.ffn.settings import FfnSettings
from shiftlens.ffn.sizing import RULE, resolve_components
from shiftlens.loading import LoadedModel
from shiftlens.models import ModelSpec
from shiftlens.nulls import seeded_generators
from shiftlens.options import check_layers, compute_device
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
    model: ModelSpec | str | LoadedModel,
    vocab: str | Path,
    out: str | Path,
    settings: FfnSettings | None = None,
) -> Path:
    """Explain every (or each given) layer's FFN: PCA components, variance ratios, top vocabulary words.

    ``settings.components`` is R, the components kept per layer: None sizes it to the hidden size
    (`shiftlens.ffn.sizing`); more than the hidden size is refused. Resumable: finished layers are kept
    and skipped on a rerun with the same parameters. Writes ``concepts.parquet`` and ``concepts.tsv``
    once all layers are done; returns the run directory. The PCA runs on the model's device.
    """
    s = settings or FfnSettings()
    spec = ModelSpec(model) if isinstance(model, str) else model
    loaded = spec if isinstance(spec, LoadedModel) else spec.load()
    device = compute_device(loaded.device)
    components, top_k, vocab_top = s.components, s.top_k, s.vocab_top
    layers = None if s.layers is None else list(s.layers)
    config = loaded.model.config
    shape = geometry(config)
    rule = RULE if components is None else "given (--components)"
    components = resolve_components(components, shape.hidden)
    chosen = check_layers(layers, shape.n_layers)
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
        "model_layers": shape.n_layers,
        "hidden": shape.hidden,
        "components_rule": rule,
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
    base_source, tuned_source = weight_source(base), weight_source(tuned)
    angles = {}
    for layer in progress(layers, desc="ffn rotation null", unit="layer"):
        base_rows = ffn_down_rows(base_source, base_config, layer).to(device)
        tuned_rows = ffn_down_rows(tuned_source, tuned_config, layer).to(device)
        generators = seeded_generators(draws, device, start=seed + layer * draws)
        angles[layer] = null_angles(base_rows, tuned_rows, components, generators)
        del base_rows, tuned_rows
    return angles
