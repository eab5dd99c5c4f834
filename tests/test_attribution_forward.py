"""Forward mode (one JVP per source): equal to the literal reference on every family, objective and attention
implementation, frozen parameters, and half precision handled like the reverse mode (float32 where it matters)."""

from __future__ import annotations

import pytest
import torch
from conftest import FAMILIES, tiny_model

from shiftlens.attribution.core import OBJECTIVES, AttributionError, attribute
from shiftlens.attribution.reference import attribute_reference

T = 15
SOURCES = torch.tensor([0, 2, 3, 5, 1, 4])  # a subset, out of order
TARGETS = torch.tensor([9, 6, 14, 7, 11, 12, 8, 10])  # unsorted: columns must follow this order


def _ids(seed: int = 0, vocab: int = 96) -> torch.Tensor:
    return torch.randint(0, vocab, (T,), generator=torch.Generator().manual_seed(seed))


def _rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a.double() - b.double()).abs().max() / b.double().abs().max())


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("attention", ["eager", "sdpa"])
def test_forward_mode_equals_reference_on_every_family(family: str, attention: str) -> None:
    model = tiny_model(family, seed=1) if attention == "eager" else tiny_model(family, seed=1, attention="sdpa")
    assert model.config._attn_implementation == attention
    ids = _ids(1)
    ref = attribute_reference(model, ids, SOURCES, TARGETS, "prob")
    assert ref.abs().max() > 0
    for chunk in (None, 1, 4, len(SOURCES)):
        out = attribute(model, ids, SOURCES, TARGETS, mode="forward", chunk_size=chunk)
        assert out.dtype == torch.float32 and out.shape == ref.shape
        assert _rel(out, ref) <= 1e-5, (chunk, _rel(out, ref))


@pytest.mark.parametrize("family", ["llama", "gpt2"])
@pytest.mark.parametrize("objective", OBJECTIVES)
def test_forward_mode_every_objective(family: str, objective: str) -> None:
    model = tiny_model(family, seed=2)
    ids = _ids(2)
    ref = attribute_reference(model, ids, SOURCES, TARGETS, objective)
    assert _rel(attribute(model, ids, SOURCES, TARGETS, objective=objective, mode="forward", chunk_size=4), ref) <= 1e-5


# Same bounds as tests/test_precision.py (relative Frobenius error vs the float32 model, ≈ 13u and 30u).
TOLERANCE = {torch.bfloat16: 0.05, torch.float16: 0.015}


def _fro(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a.double() - b.double()).norm() / b.double().norm())


def _half_model(family: str, seed: int) -> torch.nn.Module:
    return tiny_model(family, seed=seed, vocab_size=512, hidden_size=64, intermediate_size=128)


HALF_IDS = torch.randint(0, 512, (20,), generator=torch.Generator().manual_seed(5))
HALF_SOURCES, HALF_TARGETS = torch.arange(0, 10), torch.arange(10, 20)


@pytest.mark.parametrize(
    "family,seed,dtype", [("llama", 1, torch.bfloat16), ("gpt2", 2, torch.bfloat16), ("llama", 1, torch.float16)]
)
def test_forward_mode_in_half_precision_is_close_to_float32(family: str, seed: int, dtype: torch.dtype) -> None:
    model = _half_model(family, seed)
    reference = attribute(model, HALF_IDS, HALF_SOURCES, HALF_TARGETS, mode="forward")
    out = attribute(model.to(dtype), HALF_IDS, HALF_SOURCES, HALF_TARGETS, mode="forward", chunk_size=4)
    assert out.dtype == torch.float32 and torch.isfinite(out).all()
    assert _fro(out, reference) <= TOLERANCE[dtype]


def test_float16_layernorm_overflow_is_caught_and_auto_falls_back() -> None:
    """On CPU, LayerNorm's forward-AD formula cubes the inverse std in float16: GPT-2's small activations
    overflow it. Forward mode says so; auto falls back to the (float32-accumulating) reverse mode."""
    model = _half_model("gpt2", 2)
    sources, targets = torch.arange(0, 2), torch.arange(2, 20)  # a short prompt: auto plans forward mode
    reference = attribute(model, HALF_IDS, sources, targets, mode="forward")
    model.half()
    with pytest.raises(AttributionError, match="forward mode overflowed in torch.float16"):
        attribute(model, HALF_IDS, sources, targets, mode="forward")
    plans: list = []
    with pytest.warns(UserWarning, match="forward attribution failed .*; falling back to batched"):
        out = attribute(model, HALF_IDS, sources, targets, chunk_size=1, report=plans.append)
    assert [p.mode for p in plans] == ["batched"] and torch.isfinite(out).all()
    assert _fro(out, reference) <= TOLERANCE[torch.float16]


def test_forward_mode_keeps_low_probability_targets_in_float16() -> None:
    """Head gradients of ~1e-10 are zero in float16; forward mode applies them in float32 after the model."""
    model = tiny_model("llama", vocab_size=512, hidden_size=64, intermediate_size=128, tie_word_embeddings=False)
    ids = torch.randint(0, 512, (20,), generator=torch.Generator().manual_seed(0))
    sources, targets = torch.arange(0, 10), torch.arange(10, 20)
    with torch.no_grad():
        model.lm_head.weight.mul_(20)
        for t in targets.tolist():
            ids[t] = model(ids[None, :t]).logits[0, -1].argmin()
        probs = torch.softmax(model(ids[None]).logits[0, targets - 1], -1).gather(-1, ids[targets, None])
    assert probs.max() < 1e-6  # the planted low-probability targets
    reference = attribute(model.double(), ids, sources, targets, mode="forward")
    out = attribute(model.half(), ids, sources, targets, mode="forward")
    assert torch.all(out != 0)
    assert _fro(out, reference) <= TOLERANCE[torch.float16]


@pytest.mark.slow
def test_smollm2_forward_mode_equals_reference(smollm2) -> None:  # noqa: ANN001
    """A real model with SDPA attention and grouped-query heads; a short prompt, so auto plans forward mode."""
    tokenizer = smollm2.tokenizer
    prompt_ids = tokenizer("Name a colour.", add_special_tokens=False)["input_ids"]
    response_ids = tokenizer("Blue, like the sky on a clear summer day.", add_special_tokens=False)["input_ids"]
    ids = torch.tensor(prompt_ids + response_ids)
    sources, targets = torch.arange(len(prompt_ids)), torch.arange(len(prompt_ids), len(ids))
    ref = attribute_reference(smollm2.model, ids, sources, targets, "prob")
    plans: list = []
    out = attribute(smollm2.model, ids, sources, targets, report=plans.append)
    assert [p.mode for p in plans] == ["forward"]
    assert _rel(out, ref) <= 1e-4
