"""Null baseline of head overlap: how much would a random update as large as the tuning move the pairs?

For each seeded draw, the base model's W_q and W_k (each output row, norm gain folded in, shared KV heads
perturbed once) and its word vectors (each word) get Gaussian noise whose norm equals that row's base →
tuned change (`shiftlens.nulls.perturb_like`); the heads method is rerun on them with the base run's exact
settings, and each head's Jaccard overlap with the base run's pairs is averaged per layer. The observed
base-vs-tuned overlap is then read against the band of these draws.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from shiftlens.architecture import attention_qk, geometry, input_embeddings
from shiftlens.evidence import MIN_N, Finding, untestable_reason
from shiftlens.heads.core import explain_layer
from shiftlens.heads.knowledge import HeadsAnalysisError, head_overlap, head_pairs
from shiftlens.heads.pipeline import method_inputs
from shiftlens.heads.records import read_pair_rows, unit_rows
from shiftlens.heads.settings import HeadsSettings
from shiftlens.models import ModelSpec, weight_source
from shiftlens.nulls import perturb_like
from shiftlens.progress import progress
from shiftlens.runs import model_record
from shiftlens.stats import prediction_greater_p
from shiftlens.storage import file_sha256, read_manifest
from shiftlens.vocabulary import load_vocabulary

PERTURBED = (
    "W_q and W_k rows (norm gain folded in; shared key heads once) and word vectors, each with Gaussian "
    "noise of the norm of its base-to-tuned change"
)
_SAME_SETTINGS = ("method_version", "vocab_sha256", "filters", "min_frequency", "alphabetic", "top_n")
_SAME_SETTINGS += ("top_k", "cooccurrence", "reference_words", "z")


@dataclass(frozen=True)
class NullSettings:
    """How many seeded draws, and which models to read weights from (default: those the runs recorded)."""

    draws: int
    seed: int = 0
    base_model: str | None = None
    tuned_model: str | None = None
    vocab: str | None = None
    device: str = "cpu"


def _generator(*key: int) -> torch.Generator:
    """A generator seeded from ``key`` (seed, draw[, layer]), so every draw is reproducible on its own."""
    return torch.Generator().manual_seed(int(np.random.SeedSequence(list(key)).generate_state(1)[0]))


def _runs_settings(base_dir: Path, tuned_dir: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """Both runs' manifests, refusing runs computed with different method settings."""
    base, tuned = read_manifest(base_dir), read_manifest(tuned_dir)
    for name in _SAME_SETTINGS:
        if base["params"].get(name) != tuned["params"].get(name):
            raise HeadsAnalysisError(
                f"the runs differ in {name} ({base['params'].get(name)!r} vs {tuned['params'].get(name)!r}); "
                "the null baseline needs two runs made with the same settings"
            )
    return base, tuned


def _open(model: str | None, manifest: dict[str, Any], run: Path) -> tuple[Any, Any, Any]:
    """Weights, config and tokenizer of the model a run was computed from (checked by weight hash)."""
    info = model_record(manifest)
    name = model or info.get("name")
    if not name:
        raise HeadsAnalysisError(f"{run} records no model name: give the model for the null baseline")
    recorded = {} if model else {"gguf_file": info.get("gguf_file"), "adapter": info.get("adapter")}
    source, config, tokenizer, identity = weight_source(ModelSpec(name, **recorded))
    if identity["weight_hash"] != info.get("weight_hash"):
        raise HeadsAnalysisError(
            f"the weights of {name} (hash {identity['weight_hash']}) are not those {run} was computed from "
            f"(hash {info.get('weight_hash')})"
        )
    return source, config, tokenizer


def _perturb_rows(base: torch.Tensor, tuned: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """`perturb_like` over the last axis's rows of (..., hidden) tensors, in float64."""
    shape = base.shape
    flat = perturb_like(base.reshape(-1, shape[-1]).double(), tuned.reshape(-1, shape[-1]).double(), generator)
    return flat.reshape(shape)


def _perturbed_qk(
    base: tuple[torch.Tensor, torch.Tensor], tuned: tuple[torch.Tensor, torch.Tensor], group: int, gen: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    """Perturbed W_q (every query head) and W_k (each shared key head once, then expanded again)."""
    wq = _perturb_rows(base[0], tuned[0], gen)
    wk = _perturb_rows(base[1][::group], tuned[1][::group], gen).repeat_interleave(group, dim=0)
    return wq, wk


def overlap_null(base_dir: str | Path, tuned_dir: str | Path, settings: NullSettings) -> list[dict[str, Any]]:
    """Per layer of both runs: the mean head overlap (base run vs perturbed base) of each draw, and its band."""
    if settings.draws < 1:
        raise HeadsAnalysisError("--null-draws must be at least 1")
    base_dir, tuned_dir = Path(base_dir), Path(tuned_dir)
    base_manifest, tuned_manifest = _runs_settings(base_dir, tuned_dir)
    params = base_manifest["params"]
    vocab = Path(settings.vocab or base_manifest["vocabulary"]["path"])
    if not vocab.is_file() or file_sha256(vocab) != params["vocab_sha256"]:
        raise HeadsAnalysisError(
            f"word list {vocab} is missing or not the one the runs used (sha256 {params['vocab_sha256'][:12]}…): "
            "give the runs' word list"
        )
    base_source, config, tokenizer = _open(settings.base_model, base_manifest, base_dir)
    tuned_source, tuned_config, tuned_tokenizer = _open(settings.tuned_model, tuned_manifest, tuned_dir)
    run_settings = HeadsSettings.from_params(params)
    filters = {k: getattr(run_settings, k) for k in ("min_frequency", "alphabetic", "top_n")}
    vocabulary = load_vocabulary(vocab, tokenizer, **filters)
    if load_vocabulary(vocab, tuned_tokenizer, **filters).token_ids != vocabulary.token_ids:
        raise HeadsAnalysisError("the two models tokenise the word list differently: no per-word null is defined")
    words, pair_filter, _ = method_inputs(vocabulary, base_source, config, run_settings, settings.device)
    tuned_words = vocabulary.vectors(input_embeddings(tuned_source, tuned_config)).double().to(settings.device)
    base_rows = read_pair_rows(base_dir)
    tuned_layers = set(read_pair_rows(tuned_dir)["heads"][:, 0].tolist())
    layers = sorted(set(base_rows["heads"][:, 0].tolist()) & tuned_layers)
    geo = geometry(config)
    group = geo.n_heads // geo.n_kv_heads
    draws = np.empty((len(layers), settings.draws))
    for li, layer in enumerate(progress(layers, total=len(layers), desc="heads null", unit="layer")):
        base_qk, tuned_qk = attention_qk(base_source, config, layer), attention_qk(tuned_source, tuned_config, layer)
        mask = base_rows["layer"] == layer
        observed_rows = {k: v[mask] for k, v in base_rows.items() if k != "heads"}
        observed_rows["heads"] = base_rows["heads"][base_rows["heads"][:, 0] == layer]
        base_pairs = head_pairs(observed_rows)
        heads = sorted(base_pairs)
        for draw in range(settings.draws):
            perturbed_words = _perturb_rows(words, tuned_words, _generator(settings.seed, draw))
            wq, wk = _perturbed_qk(base_qk, tuned_qk, group, _generator(settings.seed, draw, layer + 1))
            result = explain_layer(perturbed_words, wq, wk, params["top_k"], pair_filter, params["max_pairs"])
            pairs = head_pairs(unit_rows(layer, result.arrays(), vocabulary.words))
            draws[li, draw] = head_overlap(base_pairs, pairs, heads)[0]["mean"]
    return [_band(layer, draws[li]) for li, layer in enumerate(layers)]


def _band(layer: int, values: np.ndarray) -> dict[str, Any]:
    finite = values[np.isfinite(values)]
    if not finite.size:
        return {"layer": layer, "draws": values.tolist()}
    q05, q95 = np.quantile(finite, [0.05, 0.95])
    return {
        "layer": layer,
        "draws": values.tolist(),
        "mean": float(finite.mean()),
        "min": float(finite.min()),
        "max": float(finite.max()),
        "q05": float(q05),
        "q95": float(q95),
    }


def overlap_finding(observed: list[dict[str, Any]], null: list[dict[str, Any]]) -> Finding:
    """Is the mean head overlap over layers lower than under tuning-sized random perturbations? (one-sided).

    p: the t prediction test of one more draw at or below the observed (`stats.prediction_greater_p` on the
    negated values, the draws taken as normal), since the draws' rank p, (1 + #{at or below}) / (1 + draws),
    cannot fall below 1 / (1 + draws) (0.048 at 20 draws, which no correction leaves significant); the effect
    is observed − mean of the null, its interval observed − the null's 97.5 and 2.5 % quantiles.
    """
    claim = "Tuning changes the heads' word pairs more than a random update of the same size"
    means = {entry["layer"]: entry["mean"] for entry in observed}
    layers = [entry["layer"] for entry in null if means.get(entry["layer"]) is not None]
    if not layers:
        return Finding.untestable("heads", claim, "no layer has an observed overlap")
    value = float(np.mean([means[layer] for layer in layers]))
    per_draw = np.nanmean(np.array([entry["draws"] for entry in null if entry["layer"] in layers]), axis=0)
    reason = untestable_reason(per_draw, min_n=MIN_N)
    if reason:
        return Finding.untestable("heads", claim, f"null draws: {reason.removeprefix('side 1: ')}")
    p = prediction_greater_p(-value, -per_draw)
    hi, lo = np.quantile(per_draw, [0.975, 0.025])
    return Finding(
        "heads",
        claim,
        testable=True,
        p_value=p,
        effect_size=value - float(per_draw.mean()),
        ci=(value - float(hi), value - float(lo)),
    )
