"""Attribution of bfloat16/float16 models: float32 output close to the float32 model's, float32 accumulation
of the gradient × input sum, and per-target seed scaling that keeps low-probability targets from underflowing."""

from __future__ import annotations

import pytest
import torch
from conftest import tiny_model

from shiftlens.attribution.core import attribute
from shiftlens.attribution.gradients import final_hidden, gradient_times_input, head_gradients, seed_scales

SOURCES, TARGETS = torch.arange(0, 10), torch.arange(10, 20)
# Unit roundoff u: bfloat16 2^-8 ≈ 3.9e-3, float16 2^-11 ≈ 4.9e-4. The forward and backward of a 2-layer model
# in that dtype compound many roundings per entry: over 5 seeds the relative Frobenius error reached 4.4u (bf16)
# and 15u (fp16). We allow ≈ 13u and 30u: loose enough for any seed, far below what a lost term would cost.
TOLERANCE = {torch.bfloat16: 0.05, torch.float16: 0.015}


def _model(family: str = "llama", seed: int = 0) -> torch.nn.Module:
    return tiny_model(family, seed=seed, vocab_size=512, hidden_size=64, intermediate_size=128)


def _ids(seed: int = 0) -> torch.Tensor:
    return torch.randint(0, 512, (20,), generator=torch.Generator().manual_seed(seed))


def _rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a.double() - b.double()).norm() / b.double().norm())


@pytest.mark.parametrize("family,seed", [("llama", 1), ("gpt2", 2)])
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_half_precision_is_close_to_float32(family: str, seed: int, dtype: torch.dtype) -> None:
    model = _model(family, seed)
    ids = _ids(seed)
    reference = attribute(model, ids, SOURCES, TARGETS)
    for mode in ("loop", "batched"):
        out = attribute(model.to(dtype), ids, SOURCES, TARGETS, mode=mode, chunk_size=4)
        assert out.dtype == torch.float32 and out.device.type == "cpu"
        assert torch.isfinite(out).all()
        assert _rel(out, reference) <= TOLERANCE[dtype], (mode, _rel(out, reference))
        model.float()


def test_low_probability_targets_do_not_underflow_in_float16() -> None:
    """Targets the model finds ~1e-9 likely (a base model explaining a tuned model's response): their
    head gradient is ~1e-10, zero in float16, so an unscaled float16 backward would return all zeros."""
    model = tiny_model("llama", vocab_size=512, hidden_size=64, intermediate_size=128, tie_word_embeddings=False)
    with torch.no_grad():
        model.lm_head.weight.mul_(20)
        ids = _ids()
        for t in TARGETS.tolist():
            ids[t] = model(ids[None, :t]).logits[0, -1].argmin()
        hidden = final_hidden(model, model.get_input_embeddings()(ids))[TARGETS - 1]
    head = head_gradients(hidden, model.lm_head.weight, None, ids[TARGETS], "prob")
    assert head.abs().max() < 1e-7 and torch.all(head.half() == 0)  # the planted underflow
    reference = attribute(model.double(), ids, SOURCES, TARGETS)
    out = attribute(model.half(), ids, SOURCES, TARGETS)
    assert torch.all(out != 0)
    assert _rel(out, reference) <= TOLERANCE[torch.float16]


def test_seed_scales_are_powers_of_two_normalising_each_row() -> None:
    vectors = torch.tensor([[3e-12, -5e-11], [0.0, 0.0], [7.0, 1.0], [-0.5, 0.25]])
    scales = seed_scales(vectors)
    assert torch.equal(torch.frexp(scales).mantissa, torch.full((4,), 0.5))  # exact powers of two
    peaks = (vectors / scales[:, None]).abs().amax(-1)
    assert torch.all((peaks[[0, 2, 3]] >= 0.5) & (peaks[[0, 2, 3]] < 1)) and scales[1] == 1


def test_gradient_times_input_accumulates_in_float32() -> None:
    """Entries exact in bfloat16 whose products are not ((1 + 2^-7)² needs 15 bits) and whose sum needs 16:
    bfloat16 arithmetic loses the low bits visibly, the float32 path gives the exact float64 value."""
    hidden, k, n = 2048, 3, 4
    gen = torch.Generator().manual_seed(0)
    signs = torch.where(torch.rand(k, n, hidden, generator=gen) < 0.5, -1.0, 1.0)
    grads = (signs * (1 + 2**-7) * 2.0 ** torch.randint(-2, 3, (k, n, hidden), generator=gen)).bfloat16()
    embeds = (1 + 2**-7) * torch.ones(n, hidden).bfloat16()
    scales = torch.tensor([1.0, 2.0**-20, 2.0**20])
    exact = ((grads.double() * embeds.double()).sum(-1) * scales.double()[:, None]).t()
    ours = gradient_times_input(grads, embeds, scales)
    assert ours.dtype == torch.float32 and ours.shape == (n, k)
    assert torch.allclose(ours.double(), exact, rtol=1e-6, atol=0)
    half = ((grads * embeds).sum(-1).double() * scales.double()[:, None]).t()  # all in bfloat16
    assert ((half - exact).abs() / exact.abs()).max() > 1e-3
