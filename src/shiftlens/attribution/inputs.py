"""The options and positions `shiftlens.attribution.core.attribute` accepts, checked with one-line errors."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from shiftlens.attribution.plan import MODES, OBJECTIVES
from shiftlens.errors import ShiftlensError
from shiftlens.models.fingerprint import tokenizer_fingerprint
from shiftlens.runs.manifest import model_record
from shiftlens.storage import read_manifest

PADDING = ("right", "left")


class AttributionInputError(ShiftlensError, ValueError):
    """Positions or options passed to `attribute` are inconsistent; the message names the culprit."""


class AttributionError(ShiftlensError, RuntimeError):
    """The requested attribution mode cannot run on this model."""


def _positions(name: str, value: Any, length: int) -> torch.Tensor:
    tensor = torch.as_tensor(value)
    if tensor.ndim != 1 or tensor.dtype.is_floating_point or tensor.dtype == torch.bool:
        raise AttributionInputError(
            f"{name} must be a 1-D integer tensor, got shape {tuple(tensor.shape)} {tensor.dtype}"
        )
    if tensor.numel() == 0:
        raise AttributionInputError(f"{name} is empty: nothing to attribute")
    bad = tensor[(tensor < 0) | (tensor >= length)]
    if bad.numel():
        raise AttributionInputError(f"{name} contains position {int(bad[0])} outside the sequence of length {length}")
    return tensor.long().cpu()


def validate_options(objective: str, mode: str, chunk_size: int | None, memory_budget: float = 1.0) -> None:
    """Check the options of `attribute`; raise `AttributionInputError` naming the bad one."""
    if objective not in OBJECTIVES:
        raise AttributionInputError(f"unknown objective {objective!r}; choose one of {', '.join(OBJECTIVES)}")
    if mode not in MODES:
        raise AttributionInputError(f"unknown mode {mode!r}; choose one of {', '.join(MODES)}")
    if chunk_size is not None and chunk_size < 1:
        raise AttributionInputError(f"chunk_size must be at least 1, got {chunk_size}")
    if not memory_budget > 0:
        raise AttributionInputError(f"memory_budget must be positive, got {memory_budget}")


def validate(
    input_ids: Any,
    source_positions: Any,
    target_positions: Any,
    objective: str,
    mode: str,
    chunk_size: int | None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Check and normalise the arguments of `attribute`; raise `AttributionInputError` naming the problem."""
    validate_options(objective, mode, chunk_size)
    ids = torch.as_tensor(input_ids)
    if ids.ndim != 1 or ids.dtype.is_floating_point:
        raise AttributionInputError(f"input_ids must be one 1-D integer sequence, got shape {tuple(ids.shape)}")
    sources = _positions("source_positions", source_positions, len(ids))
    targets = _positions("target_positions", target_positions, len(ids))
    if int(targets.min()) < 1:
        raise AttributionInputError("target position 0 has no preceding logits to predict it from")
    if int(sources.max()) >= int(targets.min()):
        raise AttributionInputError(
            f"source position {int(sources.max())} is not before the first target position "
            f"{int(targets.min())}: sources (prompt tokens) must precede every target (response token)"
        )
    return ids.long(), sources, targets


def check_responses_tokenizer(run: str | Path, tokenizer: Any, model: str) -> None:
    """Refuse responses from a run made with another tokenizer: its examples would be split into other
    tokens, so the two runs' matrices would not line up (runs from before the fingerprint are not checked)."""
    recorded = model_record(read_manifest(run)).get("tokenizer_sha256")
    current = tokenizer_fingerprint(tokenizer)
    if recorded is not None and current is not None and recorded != current:
        raise AttributionInputError(
            f"responses_from {run} was made with another tokenizer (vocabulary fingerprint {recorded}) than "
            f"{model}'s ({current}); its token rows would not line up: explain them with a model of that tokenizer"
        )
