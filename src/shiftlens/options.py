"""Option values shared by several commands: layer lists (devices: `shiftlens.models.device`)."""

from __future__ import annotations

from shiftlens.errors import ShiftlensError


def parse_layers(text: str | None, flag: str = "--layers") -> list[int] | None:
    """Parse ``0,3,10-12`` into layer indices (None: all layers); errors name ``flag``."""
    if text is None:
        return None
    layers: list[int] = []
    try:
        for part in text.split(","):
            start, _, end = part.strip().partition("-")
            layers.extend(range(int(start), int(end or start) + 1))
    except ValueError as exc:
        raise ShiftlensError(f"{flag} takes indices and ranges like 0,3,10-12, got {text!r}") from exc
    return layers


class LayerError(ShiftlensError, ValueError):
    """Layer indices that the model does not have."""


def check_layers(layers: list[int] | None, n_layers: int) -> list[int]:
    """The layers to explain, sorted and unique (all by default), refusing indices outside the model."""
    if layers is None:
        return list(range(n_layers))
    bad = [layer for layer in layers if not 0 <= layer < n_layers]
    if bad:
        raise LayerError(f"layers {bad} out of range: the model has layers 0..{n_layers - 1}")
    return sorted(set(layers))
