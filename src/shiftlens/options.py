"""Option values shared by several commands: layer lists (devices: `shiftlens.models.device`)."""

from __future__ import annotations

from shiftlens.errors import ShiftlensError


def parse_layers(text: str | None, flag: str = "--layers") -> list[int] | None:
    """Parse ``0,3,10-12`` into layer indices (None: all layers); errors name ``flag``."""
    if text is None:
        return None
    layers: list[int] = []
    for part in text.split(","):
        start, dash, end = part.strip().partition("-")
        try:
            first, last = int(start), int(end if dash else start)
        except ValueError as exc:
            raise ShiftlensError(f"{flag} takes indices and ranges like 0,3,10-12, got {text!r}") from exc
        if last < first:
            raise ShiftlensError(f"{flag}: the range {part.strip()!r} runs backwards; write {last}-{first}")
        layers.extend(range(first, last + 1))
    return layers


class LayerError(ShiftlensError, ValueError):
    """Layer indices that the model does not have."""


def check_layers(layers: list[int] | None, n_layers: int) -> list[int]:
    """The layers to explain, sorted and unique (all by default), refusing indices outside the model."""
    if layers is None:
        return list(range(n_layers))
    if not layers:
        raise LayerError(f"no layers given: name some of 0..{n_layers - 1}, or none for all")
    bad = [layer for layer in layers if not 0 <= layer < n_layers]
    if bad:
        raise LayerError(f"layers {bad} out of range: the model has layers 0..{n_layers - 1}")
    return sorted(set(layers))
