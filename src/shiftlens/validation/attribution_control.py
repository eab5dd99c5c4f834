"""Positive control of attribution: a model whose every response token is read from one known prompt token.

`PointerLM` is built in code. Its final hidden state at position t is tanh(W · e_p) + mix · (mean of the
embeddings up to t): with ``mix`` = 0 every response logit depends on the embedding at position p only, so
gradient × input is exactly zero for every other prompt token, and p must come first; with ``mix`` > 0
the other tokens matter a little and p must still come first.
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import numpy as np
import torch
from torch import nn

from shiftlens.attribution.core import attribute
from shiftlens.density import importance_density


class PointerLM(nn.Module):
    """A causal LM (the interface `shiftlens.attribution.core` uses) that reads position ``pointer``."""

    def __init__(self, vocab: int = 50, hidden: int = 16, pointer: int = 2, mix: float = 0.0, seed: int = 0) -> None:
        super().__init__()
        generator = torch.Generator().manual_seed(seed)
        self.embed = nn.Embedding(vocab, hidden)
        self.mixer = nn.Linear(hidden, hidden, bias=False)
        self.head = nn.Linear(hidden, vocab, bias=False)
        for parameter in self.parameters():
            parameter.data = torch.randn(parameter.shape, generator=generator) / hidden**0.5
        self.pointer, self.mix = pointer, mix
        self.config = SimpleNamespace(num_hidden_layers=1, num_attention_heads=1, _attn_implementation="eager")

    @property
    def base_model(self) -> PointerLM:
        """The model without its head is the model itself (its forward returns hidden states)."""
        return self

    def get_input_embeddings(self) -> nn.Embedding:
        """The input embedding table."""
        return self.embed

    def get_output_embeddings(self) -> nn.Linear:
        """The unembedding."""
        return self.head

    def forward(self, inputs_embeds: torch.Tensor, attention_mask: Any = None, position_ids: Any = None, **_: Any):
        """Final hidden states (B, L, H): the pointed-to embedding's reading, plus a causal mean times ``mix``."""
        read = torch.tanh(self.mixer(inputs_embeds[:, self.pointer]))[:, None, :]
        steps = torch.arange(1, inputs_embeds.shape[1] + 1, dtype=inputs_embeds.dtype, device=inputs_embeds.device)
        running = inputs_embeds.cumsum(1) / steps[None, :, None]
        return SimpleNamespace(last_hidden_state=read.expand_as(inputs_embeds) + self.mix * running)


def pointer_rank(model: PointerLM, n_prompt: int, n_response: int, mode: str, seed: int = 0) -> tuple[int, np.ndarray]:
    """Where the pointed-to token ranks (0 = first) by importance density, and the densities of every prompt token."""
    ids = torch.randint(
        0, model.embed.num_embeddings, (n_prompt + n_response,), generator=torch.Generator().manual_seed(seed)
    )
    matrix = attribute(model, ids, torch.arange(n_prompt), torch.arange(n_prompt, n_prompt + n_response), mode=mode)
    density = importance_density(matrix.numpy())
    order = np.argsort(-density, kind="stable")
    return int(np.flatnonzero(order == model.pointer)[0]), density
