"""Logit lens: every layer's residual stream read through the final norm and the unembedding, in the same forward.

For each response token, the probability and rank of that token when the hidden state after layer ℓ predicts
it; the last layer's reading is the model's own output. The layer where a prediction *forms* is the first from
which the token stays the top choice to the end (None when the model's own top choice is another token).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from shiftlens.architecture import spec_for
from shiftlens.diff.divergence import token_ranks


@dataclass(frozen=True)
class Reading:
    """One forward's reading of the response tokens: the final logits (M × V) and the lens (layers × M)."""

    logits: torch.Tensor
    lens_probability: torch.Tensor
    lens_rank: torch.Tensor


def final_norm(model: torch.nn.Module) -> torch.nn.Module:
    """The norm before the unembedding, found by the architecture map's name for its weight."""
    return model.get_submodule(spec_for(model.config).final_norm.rsplit(".", 1)[0])


def read_forward(model: torch.nn.Module, input_ids: torch.Tensor, response_positions: torch.Tensor) -> Reading:
    """One forward with hidden states: the logits predicting each response token and every layer's lens reading."""
    targets = input_ids[response_positions]
    rows = response_positions - 1
    with torch.no_grad():
        out = model(input_ids=input_ids[None], output_hidden_states=True)
        norm, head = final_norm(model), model.get_output_embeddings()
        hidden = out.hidden_states  # embeddings, then after each layer (the last one already normed)
        layers = [head(norm(h[0, rows])) for h in hidden[1:-1]] + [out.logits[0, rows]]
    log_probs = [torch.log_softmax(logits.double(), -1).gather(-1, targets[:, None])[:, 0] for logits in layers]
    return Reading(
        logits=out.logits[0, rows],
        lens_probability=torch.stack(log_probs).exp(),
        lens_rank=torch.stack([token_ranks(logits, targets) for logits in layers]),
    )


def formation_layer(ranks: torch.Tensor) -> torch.Tensor:
    """Per token (column of ``ranks``, layers × M): the first layer from which its rank stays 0; −1 if it never does."""
    top = ranks == 0
    stays = top.flip(0).cumprod(0).flip(0).bool()  # top from this layer to the last
    first = stays.float().argmax(0)
    return torch.where(stays[-1], first, torch.full_like(first, -1))
