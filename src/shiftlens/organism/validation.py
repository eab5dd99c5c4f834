"""Planted-signal check (a): instruction scores of base and tuned explaining the same response tokens.

Both models get the identical chat-formatted token sequence (prompt, then the tuned model's response);
sources are the user prompt's own tokens, targets the response tokens (not the end-of-turn marker).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from shiftlens.density import DensityParams, importance_density, instruction_score
from shiftlens.organism.chat import render


@dataclass(frozen=True)
class AttributionInput:
    """One example's token ids and which positions are prompt sources, response targets, instruction."""

    input_ids: torch.Tensor  # (T,)
    source_positions: torch.Tensor  # (N,) the user prompt's tokens
    target_positions: torch.Tensor  # (M,) the response's tokens
    instruction_mask: np.ndarray  # (N,) bool: source token overlaps an instruction span


def attribution_input(tokenizer: Any, record: dict[str, Any]) -> AttributionInput:
    """The sequence and positions of a demo-prompt record (``prompt``, ``response``, ``instruction_spans``)."""
    prompt = tokenizer(record["prompt"], return_offsets_mapping=True)
    chat = tokenizer(render(record["prompt"]))["input_ids"]
    response = tokenizer(record["response"])["input_ids"]
    start = 1  # after the user marker
    if chat[start : start + len(prompt["input_ids"])] != prompt["input_ids"]:
        raise ValueError(f"example {record['id']!r}: prompt tokens differ inside the chat format")
    spans = record["instruction_spans"]
    mask = np.array([any(s < b and e > a for a, b in spans) for s, e in prompt["offset_mapping"]], dtype=bool)
    return AttributionInput(
        input_ids=torch.tensor(chat + response),
        source_positions=torch.arange(start, start + len(prompt["input_ids"])),
        target_positions=torch.arange(len(chat), len(chat) + len(response)),
        instruction_mask=mask,
    )


def example_score(model: Any, example: AttributionInput, params: DensityParams | None = None) -> float:
    """The paper's instruction score of one example under one model (gradient × input, probability)."""
    from shiftlens.attribution.core import attribute

    matrix = attribute(model, example.input_ids, example.source_positions, example.target_positions)
    density = importance_density(matrix.numpy(), params or DensityParams())
    return instruction_score(density, example.instruction_mask)


def instruction_verbs() -> list[str]:
    """The verbs the organism's instructions are phrased with (the planted instruction words for heads)."""
    from shiftlens.organism.tasks import INSTRUCTIONS

    first = {phrasing.split()[0].lower() for phrasings in INSTRUCTIONS.values() for phrasing in phrasings}
    return sorted(first - {"what", "is"})
