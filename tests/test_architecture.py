"""The architecture map against what each family's real forward pass computes."""

from __future__ import annotations

import pytest
import torch
from conftest import FAMILIES, tiny_config, tiny_model
from transformers import AttentionInterface
from transformers.integrations.sdpa_attention import sdpa_attention_forward

from shiftlens import architecture as arch
from shiftlens.models import ModuleWeights, SafetensorsWeights

CAPTURED: dict[str, torch.Tensor] = {}


def _capturing_attention(module, query, key, value, attention_mask, **kwargs):
    CAPTURED.setdefault("query", query.detach().clone())
    CAPTURED.setdefault("key", key.detach().clone())
    return sdpa_attention_forward(module, query, key, value, attention_mask, **kwargs)


AttentionInterface.register("shiftlens_capture", _capturing_attention)


def _randomize_norms_zero_biases(model: torch.nn.Module) -> None:
    with torch.no_grad():
        for name, param in model.named_parameters():
            if name.endswith("bias"):
                param.zero_()
            elif param.ndim == 1:
                param.uniform_(0.5, 1.5)


def _normalize(x: torch.Tensor, kind: str, eps: float) -> torch.Tensor:
    if kind == "layer":
        x = x - x.mean(-1, keepdim=True)
        return x / torch.sqrt(x.pow(2).mean(-1, keepdim=True) + eps)
    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps)


@pytest.mark.parametrize("family", FAMILIES)
def test_attention_qk_matches_forward_queries_and_keys(family: str) -> None:
    """At position 0 (RoPE is the identity) the map's W_q, W_k reproduce the layer's real q and k."""
    model = tiny_model(family)
    model.config._attn_implementation = "shiftlens_capture"
    _randomize_norms_zero_biases(model)
    spec = arch.spec_for(model)
    layer_input: dict[str, torch.Tensor] = {}
    norm_module = model.get_submodule(spec.layer.format(i=0) + spec.attn_norm.rsplit(".", 1)[0])
    norm_module.register_forward_pre_hook(lambda _m, args: layer_input.setdefault("x", args[0].detach()))
    CAPTURED.clear()
    ids = torch.tensor([[5, 17, 33, 2]])
    model(input_ids=ids, position_ids=torch.zeros_like(ids))
    eps = next(
        getattr(model.config, a)
        for a in ("rms_norm_eps", "layer_norm_eps", "layer_norm_epsilon")
        if hasattr(model.config, a)
    )
    normed = _normalize(layer_input["x"][0], spec.norm_kind, eps)
    wq, wk = arch.attention_qk(ModuleWeights(model), model.config, 0)
    geo = arch.geometry(model.config)
    query = CAPTURED["query"][0]  # (heads, seq, head_dim)
    key = CAPTURED["key"][0].repeat_interleave(geo.n_heads // geo.n_kv_heads, dim=0)
    torch.testing.assert_close(torch.einsum("sd,hkd->hsk", normed, wq), query, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(torch.einsum("sd,hkd->hsk", normed, wk), key, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("family", FAMILIES)
def test_ffn_rows_and_embeddings_have_the_documented_layout(family: str) -> None:
    """Down-projection rows are neuron output vectors: the MLP output equals activations @ rows."""
    model = tiny_model(family)
    source = ModuleWeights(model)
    spec = arch.spec_for(model)
    rows = arch.ffn_down_rows(source, model.config, 1)
    down_module = model.get_submodule(spec.layer.format(i=1) + spec.down.rsplit(".", 1)[0])
    acts = torch.randn(3, rows.shape[0])
    expected = down_module(acts) - down_module(torch.zeros_like(acts))  # remove the bias
    torch.testing.assert_close(acts @ rows, expected, rtol=1e-5, atol=1e-5)
    vocab = model.config.vocab_size
    assert arch.input_embeddings(source, model.config).shape == (vocab, arch.geometry(model.config).hidden)
    torch.testing.assert_close(arch.output_embeddings(source, model.config), model.get_output_embeddings().weight)


def test_safetensors_source_matches_module_source(tmp_path) -> None:
    """Per-tensor streaming from shards returns exactly the loaded model's weights."""
    model = tiny_model("llama")
    model.save_pretrained(tmp_path, max_shard_size="20KB")
    assert (tmp_path / "model.safetensors.index.json").exists()
    streamed = SafetensorsWeights(tmp_path, model.config)
    for a, b in zip(
        arch.attention_qk(streamed, model.config, 1), arch.attention_qk(ModuleWeights(model), model.config, 1)
    ):
        torch.testing.assert_close(a, b)


def test_unsupported_architecture_names_it_and_lists_supported() -> None:
    config = tiny_config("llama")
    config.model_type = "mamba"
    with pytest.raises(arch.UnsupportedArchitectureError, match="'mamba'.*llama.*gpt2.*phi"):
        arch.spec_for(config)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_norm_gain_is_folded_in_float32_for_half_precision_checkpoints(dtype: torch.dtype) -> None:
    """W_q·diag(gain) is computed from the stored half-precision values in float32, not rounded to half."""
    model = tiny_model("llama", seed=4)
    _randomize_norms_zero_biases(model)
    model = model.to(dtype)
    source = ModuleWeights(model)
    spec = arch.spec_for(model)
    prefix = spec.layer.format(i=1)
    gain = source.get(prefix + spec.attn_norm).float()
    stored_q = source.get(prefix + spec.q).float()
    wq, wk = arch.attention_qk(source, model.config, 1)
    assert wq.dtype == wk.dtype == torch.float32
    expected = (stored_q * gain).reshape(wq.shape)
    torch.testing.assert_close(wq, expected, rtol=0, atol=0)
    half_product = (source.get(prefix + spec.q) * gain.to(dtype)).float().reshape(wq.shape)
    assert not torch.equal(half_product, expected)  # the old fold rounded the product to the checkpoint dtype
    unfolded, _ = arch.attention_qk(source, model.config, 1, fold_norm=False)
    assert unfolded.dtype == dtype  # without a fold the stored values are returned as they are
