"""The one architecture map: where each family keeps its weights and how they are laid out.

Every method that reads weights (heads, FFN, attribution's embeddings) goes through this module, so
supporting a new family means adding one `ArchSpec` entry, never an `if llama` elsewhere.
Parameter names are Hugging Face state-dict names, so the same map serves a loaded model and
safetensors shards read one layer at a time (see `shiftlens.models.sources`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal, Protocol

import torch

from shiftlens.errors import ShiftlensError


class UnsupportedArchitectureError(ShiftlensError, ValueError):
    """Raised for a model family that the architecture map does not describe."""


class WeightSource(Protocol):
    """Anything that returns a parameter tensor by its state-dict name (a model or safetensors shards)."""

    def get(self, name: str) -> torch.Tensor: ...

    def has(self, name: str) -> bool: ...


@dataclass(frozen=True)
class ArchSpec:
    """Declarative description of one model family's weight names and layouts.

    Names with ``{i}`` are per layer. ``qkv`` is set for fused projections, with ``qkv_layout``
    "blocks" (all q, then all k, then all v: GPT-2) or "per_head" (heads × [q, k, v]: GPT-NeoX).
    ``conv1d`` marks GPT-2 style Conv1D weights stored as (in, out) instead of Linear's (out, in).
    ``norm_offset`` is added to a norm's stored gain (Gemma stores gain − 1). ``unembed`` lists the
    names the unembedding has gone by (first present wins); with none present it is tied to ``embed``.
    """

    family: str
    model_types: tuple[str, ...]
    embed: str
    unembed: tuple[str, ...]
    final_norm: str
    layer: str
    attn_norm: str
    mlp_norm: str | None
    q: str | None
    k: str | None
    v: str | None
    o: str
    up: str
    down: str
    gate: str | None = None
    qkv: str | None = None
    qkv_layout: Literal["blocks", "per_head"] | None = None
    conv1d: bool = False
    norm_kind: Literal["rms", "layer"] = "rms"
    norm_offset: float = 0.0
    layers_attr: str = "num_hidden_layers"


_LLAMA_LIKE = dict(
    embed="model.embed_tokens.weight",
    unembed=("lm_head.weight",),
    final_norm="model.norm.weight",
    layer="model.layers.{i}.",
    attn_norm="input_layernorm.weight",
    mlp_norm="post_attention_layernorm.weight",
    q="self_attn.q_proj.weight",
    k="self_attn.k_proj.weight",
    v="self_attn.v_proj.weight",
    o="self_attn.o_proj.weight",
    gate="mlp.gate_proj.weight",
    up="mlp.up_proj.weight",
    down="mlp.down_proj.weight",
)

ARCHITECTURES: tuple[ArchSpec, ...] = (
    ArchSpec(family="llama", model_types=("llama",), **_LLAMA_LIKE),
    ArchSpec(family="mistral", model_types=("mistral",), **_LLAMA_LIKE),
    ArchSpec(family="qwen2", model_types=("qwen2",), **_LLAMA_LIKE),
    ArchSpec(family="gemma", model_types=("gemma",), norm_offset=1.0, **_LLAMA_LIKE),
    ArchSpec(
        family="gpt2",
        model_types=("gpt2",),
        embed="transformer.wte.weight",
        unembed=("lm_head.weight",),
        final_norm="transformer.ln_f.weight",
        layer="transformer.h.{i}.",
        attn_norm="ln_1.weight",
        mlp_norm="ln_2.weight",
        q=None,
        k=None,
        v=None,
        qkv="attn.c_attn.weight",
        qkv_layout="blocks",
        o="attn.c_proj.weight",
        up="mlp.c_fc.weight",
        down="mlp.c_proj.weight",
        conv1d=True,
        norm_kind="layer",
        layers_attr="n_layer",
    ),
    ArchSpec(
        family="gpt_neox",
        model_types=("gpt_neox",),
        embed="gpt_neox.embed_in.weight",
        unembed=("lm_head.weight", "embed_out.weight"),  # renamed in transformers 5
        final_norm="gpt_neox.final_layer_norm.weight",
        layer="gpt_neox.layers.{i}.",
        attn_norm="input_layernorm.weight",
        mlp_norm="post_attention_layernorm.weight",
        q=None,
        k=None,
        v=None,
        qkv="attention.query_key_value.weight",
        qkv_layout="per_head",
        o="attention.dense.weight",
        up="mlp.dense_h_to_4h.weight",
        down="mlp.dense_4h_to_h.weight",
        norm_kind="layer",
    ),
    ArchSpec(
        family="phi",
        model_types=("phi",),
        embed="model.embed_tokens.weight",
        unembed=("lm_head.weight",),
        final_norm="model.final_layernorm.weight",
        layer="model.layers.{i}.",
        attn_norm="input_layernorm.weight",
        mlp_norm=None,  # parallel block: attention and MLP read the same normed input
        q="self_attn.q_proj.weight",
        k="self_attn.k_proj.weight",
        v="self_attn.v_proj.weight",
        o="self_attn.dense.weight",
        up="mlp.fc1.weight",
        down="mlp.fc2.weight",
        norm_kind="layer",
    ),
)

SUPPORTED_MODEL_TYPES: tuple[str, ...] = tuple(t for a in ARCHITECTURES for t in a.model_types)


def spec_for(config: Any) -> ArchSpec:
    """The map entry for a Hugging Face config (or a model, whose ``.config`` is used)."""
    config = getattr(config, "config", config)
    model_type = getattr(config, "model_type", None)
    for spec in ARCHITECTURES:
        if model_type in spec.model_types:
            return spec
    raise UnsupportedArchitectureError(
        f"unsupported architecture {model_type!r} ({type(config).__name__}); "
        f"supported model types: {', '.join(SUPPORTED_MODEL_TYPES)}"
    )


@dataclass(frozen=True)
class Geometry:
    """Head and layer counts read from a config, with the defaults each family uses."""

    n_layers: int
    hidden: int
    n_heads: int
    n_kv_heads: int
    head_dim: int


def geometry(config: Any) -> Geometry:
    """Layer and head geometry of a config, including grouped-query KV heads and explicit head_dim."""
    config = getattr(config, "config", config)
    spec = spec_for(config)
    hidden = int(getattr(config, "hidden_size", None) or config.n_embd)
    n_heads = int(getattr(config, "num_attention_heads", None) or config.n_head)
    n_kv = int(getattr(config, "num_key_value_heads", None) or n_heads)
    head_dim = int(getattr(config, "head_dim", None) or hidden // n_heads)
    return Geometry(int(getattr(config, spec.layers_attr)), hidden, n_heads, n_kv, head_dim)


def _linear(source: WeightSource, name: str, spec: ArchSpec) -> torch.Tensor:
    """A projection weight in Linear layout (out, in), transposing Conv1D storage."""
    weight = source.get(name)
    return weight.t() if spec.conv1d else weight


def _gain(source: WeightSource, name: str, spec: ArchSpec, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    return source.get(name).to(dtype) + spec.norm_offset


def input_embeddings(source: WeightSource, config: Any) -> torch.Tensor:
    """The input embedding matrix (vocab × hidden)."""
    return source.get(spec_for(config).embed)


def output_embeddings(source: WeightSource, config: Any) -> torch.Tensor:
    """The unembedding matrix (vocab × hidden); falls back to the input embeddings when tied."""
    spec = spec_for(config)
    name = next((n for n in spec.unembed if source.has(n)), spec.embed)
    return source.get(name)


def final_norm_gain(source: WeightSource, config: Any) -> torch.Tensor:
    """Gain of the final norm before the unembedding (Gemma's offset applied)."""
    spec = spec_for(config)
    return _gain(source, spec.final_norm, spec)


def _projections(
    source: WeightSource, prefix: str, spec: ArchSpec, geo: Geometry, modules: str
) -> dict[str, torch.Tensor]:
    """The asked ones of q, k, v in Linear layout (out, in); a fused projection is read once and split."""
    if spec.qkv is None:
        return {m: _linear(source, prefix + getattr(spec, m), spec) for m in modules}
    fused = _linear(source, prefix + spec.qkv, spec)
    if spec.qkv_layout == "blocks":
        parts = fused.split(geo.n_heads * geo.head_dim, dim=0)
    else:
        per_head = fused.reshape(geo.n_heads, 3, geo.head_dim, geo.hidden)
        parts = tuple(per_head[:, i].reshape(-1, geo.hidden) for i in range(3))
    return {m: parts["qkv".index(m)] for m in modules}


def attention_qk(
    source: WeightSource, config: Any, layer: int, fold_norm: bool = True
) -> tuple[torch.Tensor, torch.Tensor]:
    """W_q and W_k of every query head of a layer, each (n_heads, head_dim, hidden).

    The preceding norm's gain is folded into the input side when ``fold_norm``, in float32 (float64 for
    float64 checkpoints) so that half-precision rounding of the product cannot reorder dimensions; the
    result then has that dtype. Grouped KV heads are expanded so that key head h is the one query head
    h attends with.
    """
    spec = spec_for(config)
    geo = geometry(config)
    prefix = spec.layer.format(i=layer)
    wq, wk = (_projections(source, prefix, spec, geo, "qk")[m] for m in "qk")
    wq = wq.reshape(geo.n_heads, geo.head_dim, geo.hidden)
    wk = wk.reshape(geo.n_kv_heads, geo.head_dim, geo.hidden)
    wk = wk.repeat_interleave(geo.n_heads // geo.n_kv_heads, dim=0)
    if fold_norm:
        dtype = torch.promote_types(wq.dtype, torch.float32)
        gain = _gain(source, prefix + spec.attn_norm, spec, dtype)
        wq, wk = wq.to(dtype) * gain, wk.to(dtype) * gain
    return wq, wk


def ffn_down_rows(source: WeightSource, config: Any, layer: int) -> torch.Tensor:
    """The FFN down-projection as (intermediate × hidden): row j is neuron j's output vector."""
    spec = spec_for(config)
    down = _linear(source, spec.layer.format(i=layer) + spec.down, spec)  # (hidden, intermediate)
    return down.t()


def layer_parameter_names(config: Any, layer: int) -> list[str]:
    """State-dict names of the weights `attention_qk` and `ffn_down_rows` read for a layer."""
    spec = spec_for(config)
    prefix = spec.layer.format(i=layer)
    names = [spec.qkv] if spec.qkv else [spec.q, spec.k]
    names += [spec.attn_norm, spec.down]
    return [prefix + n for n in names if n]


LAYER_LINEAR = ("o", "gate", "up", "down")  # a layer's projections besides q/k/v (Linear layout)
LAYER_NORMS = ("attn_norm", "mlp_norm")  # a layer's norm gains


def layer_weight_names(config: Any, layer: int) -> dict[str, str]:
    """State-dict name of each of a layer's modules with a tensor of its own (q, k, v only when not fused)."""
    spec = spec_for(config)
    prefix = spec.layer.format(i=layer)
    modules = (*(() if spec.qkv else ("q", "k", "v")), *LAYER_LINEAR, *LAYER_NORMS)
    return {m: prefix + getattr(spec, m) for m in modules if getattr(spec, m) is not None}


def model_weight_names(source: WeightSource, config: Any) -> dict[str, str]:
    """State-dict names of the weights outside the layers: embeddings, final norm, an untied unembedding."""
    spec = spec_for(config)
    names = {"embed": spec.embed, "final_norm": spec.final_norm}
    unembed = next((n for n in spec.unembed if source.has(n)), None)
    return names if unembed is None else {**names, "unembed": unembed}


def layer_matrices(source: WeightSource, config: Any, layer: int) -> dict[str, torch.Tensor]:
    """Every weight of a layer by module (q, k, v, o, gate, up, down in Linear layout; attn_norm, mlp_norm gains).

    A fused q/k/v projection is split into its three parts (rows of head h are rows h·d … (h+1)·d of each).
    """
    spec = spec_for(config)
    out = _projections(source, spec.layer.format(i=layer), spec, geometry(config), "qkv") if spec.qkv else {}
    for module, name in layer_weight_names(config, layer).items():
        out[module] = source.get(name) if module in LAYER_NORMS else _linear(source, name, spec)
    return out


def model_matrices(source: WeightSource, config: Any) -> dict[str, torch.Tensor]:
    """The weights outside the layers: embeddings, the final norm's gain and an untied unembedding."""
    return {module: source.get(name) for module, name in model_weight_names(source, config).items()}
