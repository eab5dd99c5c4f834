"""A planted pair built by weight surgery on organism-base: known head relations and one FFN concept, no tuning.

`build_planted_pair` writes DIR/tuned (organism-base with `verb_plants` in every head of every layer and a
concept planted in one down-projection), DIR/continued (organism-base + noise as large as organism-tuned's
update: a model that changed as much as tuning did, in no planted direction), the organism's first prompt
records (already in the ground-truth format), its word list, and DIR/ground_truth.json saying what was planted.
Nothing about attribution is planted, so attribution must find nothing beyond chance here.
"""

from __future__ import annotations

import copy
import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import torch

from shiftlens import organism
from shiftlens.analysis.heads import word_list
from shiftlens.architecture import geometry, layer_weight_names, spec_for
from shiftlens.errors import ShiftlensError
from shiftlens.ffn.core import principal_components
from shiftlens.models import load_model
from shiftlens.validation.ffn_control import concept_groups
from shiftlens.validation.heads_control import admitted, verb_plants
from shiftlens.validation.inputs import ControlInputs, control_inputs
from shiftlens.validation.noise import noisy_model
from shiftlens.validation.surgery import plant_concept, plant_head_pairs, unit_direction
from shiftlens.validation.truth import write_ground_truth


def add_qk(model: torch.nn.Module, config: Any, layer: int, delta_q: torch.Tensor, delta_k: torch.Tensor) -> None:
    """Add W_q and W_k updates (Linear layout: out × hidden, key rows per KV head) to a layer's weights, whether
    q and k are separate projections or one fused q, k, v block projection (GPT-2's Conv1D, stored in × out)."""
    spec = spec_for(config)
    parameters = dict(model.named_parameters())
    if spec.qkv is None:
        names = layer_weight_names(config, layer)
        updates = [(parameters[names["q"]], delta_q), (parameters[names["k"]], delta_k)]
    elif spec.qkv_layout == "blocks":
        fused = parameters[spec.layer.format(i=layer) + spec.qkv]
        outputs = fused.shape[1] if spec.conv1d else fused.shape[0]
        rest = delta_q.new_zeros(outputs - len(delta_q) - len(delta_k), delta_q.shape[1])  # v is left as it is
        updates = [(fused, torch.cat([delta_q, delta_k, rest]))]
    else:
        raise ShiftlensError(f"planting heads does not support the {spec.qkv_layout} q, k, v layout of {spec.family}")
    with torch.no_grad():
        for weight, delta in updates:
            weight += (delta.t() if spec.conv1d else delta).to(weight.dtype)


def plant_heads(
    model: torch.nn.Module, inputs: ControlInputs, verbs: list[str], strength: float, seed: int
) -> dict[str, set[str]]:
    """Plant each verb with one admitted partner in 2 dimensions of every head of every layer; verb → keys."""
    spec, geo = spec_for(inputs.config), geometry(inputs.config)
    parameters = dict(model.named_parameters())
    keys: dict[str, set[str]] = {verb: set() for verb in verbs}
    for layer in range(geo.n_layers):
        wq, wk = inputs.attention(layer)
        plants = verb_plants(inputs.word_index, verbs, geo.n_heads, geo.head_dim, 2, seed + layer, inputs.pair_filter)
        q, k = plant_head_pairs(wq, wk, inputs.words, plants, strength)
        gain = parameters[layer_weight_names(inputs.config, layer)["attn_norm"]].detach().double() + spec.norm_offset
        group = geo.n_heads // geo.n_kv_heads
        delta_q = ((q - wq.double()) / gain).reshape(-1, geo.hidden)
        delta_k = ((k - wk.double()) / gain).reshape(geo.n_kv_heads, group, geo.head_dim, geo.hidden).sum(1)
        add_qk(model, inputs.config, layer, delta_q, delta_k.reshape(-1, geo.hidden))
        for plant in plants:
            keys[inputs.vocabulary.words[plant.query].lower()].update(
                inputs.vocabulary.words[key].lower() for key in plant.keys
            )
    return keys


def plant_ffn(model: torch.nn.Module, inputs: ControlInputs, layer: int, ratio: float, seed: int) -> list[str]:
    """Plant a concept (a word and its 4 nearest neighbours) at ``ratio`` × the layer's largest eigenvalue."""
    group = concept_groups(inputs.output_words, 1, seed)[0]
    rows = inputs.down_rows(layer)
    largest = float(principal_components(rows, 1).explained_variance[0])
    direction = unit_direction(inputs.output_words[group])
    planted = plant_concept(rows, direction, ratio * largest, torch.Generator().manual_seed(seed))
    weight = dict(model.named_parameters())[layer_weight_names(inputs.config, layer)["down"]]
    with torch.no_grad():  # rows are (intermediate × hidden): Conv1D's storage, Linear's transposed
        weight.copy_((planted if spec_for(inputs.config).conv1d else planted.t()).to(weight.dtype))
    return [inputs.vocabulary.words[i].lower() for i in group]


def build_planted_pair(
    out: str | Path,
    *,
    n_verbs: int = 16,
    strength: float = 2.0,
    concept_layer: int = 1,
    variance_ratio: float = 2.0,
    n_prompts: int | None = None,
    seed: int = 0,
) -> Path:
    """Write the planted pair into ``out`` (see the module doc) and return its ground_truth.json."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    base = load_model("organism-base", device="cpu")
    inputs = control_inputs(base, organism.vocab_path())
    index = inputs.word_index
    general = sorted(w for w in word_list() if w in index and admitted(index[w], inputs.pair_filter, len(index)).size)
    verbs = [str(w) for w in np.random.default_rng(seed).choice(general, n_verbs, replace=False)]
    model = copy.deepcopy(base.model)
    keys = plant_heads(model, inputs, verbs, strength, seed)
    concept = plant_ffn(model, inputs, concept_layer, variance_ratio, seed)
    model.save_pretrained(out / "tuned")
    base.tokenizer.save_pretrained(out / "tuned")
    tuned = load_model("organism-tuned", device="cpu")
    continued = noisy_model(base, tuned, torch.Generator().manual_seed(seed + 1), 0)
    continued.model.save_pretrained(out / "continued")
    base.tokenizer.save_pretrained(out / "continued")
    records = organism.load_prompts()[:n_prompts]  # already in the ground-truth record format
    with (out / "prompts.jsonl").open("w", encoding="utf-8") as handle:
        handle.writelines(json.dumps(r) + "\n" for r in records)
    shutil.copyfile(organism.vocab_path(), out / "vocab.tsv")
    return write_ground_truth(
        out,
        {
            "schema": 1,
            "name": "organism-base + surgery",
            "models": {"base": "organism-base", "continued": "continued", "tuned": {"0": "tuned"}},
            "prompts": "prompts.jsonl",
            "vocab": "vocab.tsv",
            "heads": {"layers": None, "relations": [{"query": v, "keys": sorted(keys[v])} for v in verbs]},
            "ffn": {"concepts": [{"name": f"neighbours of {concept[0]}", "task": None, "words": concept}]},
            "attribution": {},
        },
    )
