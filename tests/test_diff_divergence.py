"""Per-token divergence (issue 17): the literal formulas, a model against itself, and a one-forward reading."""

from __future__ import annotations

import math

import pytest
import torch
from conftest import tiny_model

from shiftlens.diff.divergence import response_logits, token_divergence, token_ranks


def test_divergence_by_hand() -> None:
    base = torch.tensor([[0.0, 0.0], [math.log(3.0), 0.0]], dtype=torch.float64)
    tuned = torch.tensor([[math.log(3.0), 0.0], [math.log(3.0), 0.0]], dtype=torch.float64)
    result = token_divergence(base, tuned, torch.tensor([0, 1]))
    # token 0: tuned (3/4, 1/4) against base (1/2, 1/2); token 1: the same distributions, KL 0
    expected = 0.75 * math.log(0.75 / 0.5) + 0.25 * math.log(0.25 / 0.5)
    assert result.kl.tolist() == pytest.approx([expected, 0.0], abs=1e-12)
    assert result.p_base.tolist() == pytest.approx([0.5, 0.25])
    assert result.p_tuned.tolist() == pytest.approx([0.75, 0.25])
    assert result.rank_base.tolist() == [0, 1] and result.rank_tuned.tolist() == [0, 1]
    assert token_ranks(torch.tensor([[1.0, 1.0, 2.0]]), torch.tensor([0])).tolist() == [1]  # ties do not count


def test_a_model_against_itself_diverges_nowhere() -> None:
    model = tiny_model("llama")
    ids = torch.randint(0, 96, (30,), generator=torch.Generator().manual_seed(0))
    positions = torch.arange(10, 30)
    logits = response_logits(model, ids, positions)
    result = token_divergence(logits, logits.clone(), ids[positions])
    assert float(result.kl.abs().max()) < 1e-6
    full = torch.log_softmax(model(input_ids=ids[None]).logits[0].double(), -1)
    expected = full[positions - 1].gather(-1, ids[positions][:, None])[:, 0].exp()
    assert torch.allclose(result.p_base, expected, atol=1e-6)  # row j − 1 predicts token j


def test_another_model_diverges() -> None:
    ids = torch.randint(0, 96, (30,), generator=torch.Generator().manual_seed(0))
    positions = torch.arange(10, 30)
    a = response_logits(tiny_model("llama", seed=0), ids, positions)
    b = response_logits(tiny_model("llama", seed=1), ids, positions)
    assert float(token_divergence(a, b, ids[positions]).kl.min()) > 0
    with pytest.raises(ValueError, match="differ in shape"):
        token_divergence(a, b[:5], ids[positions])
