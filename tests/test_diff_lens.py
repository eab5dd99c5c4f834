"""The logit lens (issue 17): its last layer is the model's output, its formation layer by hand, on every family."""

from __future__ import annotations

import pytest
import torch
from conftest import FAMILIES, tiny_model

from shiftlens.diff.divergence import response_logits, token_divergence
from shiftlens.diff.lens import formation_layer, read_forward


@pytest.mark.parametrize("family", FAMILIES)
def test_the_last_layer_reads_the_models_own_output(family: str) -> None:
    model = tiny_model(family)
    ids = torch.randint(0, 96, (24,), generator=torch.Generator().manual_seed(0))
    positions = torch.arange(8, 24)
    reading = read_forward(model, ids, positions)
    assert reading.lens_rank.shape == (model.config.num_hidden_layers, 16)
    own = token_divergence(response_logits(model, ids, positions), reading.logits, ids[positions])
    assert torch.allclose(reading.lens_probability[-1], own.p_base, atol=1e-6)
    assert torch.equal(reading.lens_rank[-1], own.rank_base)
    assert float(own.kl.max()) < 1e-6


def test_a_layer_reads_through_the_final_norm_and_head() -> None:
    model = tiny_model("llama")
    ids = torch.randint(0, 96, (12,), generator=torch.Generator().manual_seed(1))
    positions = torch.arange(4, 12)
    reading = read_forward(model, ids, positions)
    with torch.no_grad():
        after_first = model(input_ids=ids[None], output_hidden_states=True).hidden_states[1][0]
        logits = model.lm_head(model.model.norm(after_first))[positions - 1]
    expected = torch.log_softmax(logits.double(), -1).gather(-1, ids[positions][:, None])[:, 0].exp()
    assert torch.allclose(reading.lens_probability[0], expected, atol=1e-6)


def test_formation_layer_by_hand() -> None:
    ranks = torch.tensor([[3, 0, 0, 2], [0, 1, 0, 0], [0, 0, 0, 1]])  # 3 layers × 4 tokens
    assert formation_layer(ranks).tolist() == [1, 2, 0, -1]
