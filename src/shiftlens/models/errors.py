"""The one error of the models package: a model, its weights or its device could not be used."""

from __future__ import annotations

from shiftlens.errors import ShiftlensError


class ModelLoadError(ShiftlensError, RuntimeError):
    """A model could not be loaded; the message says why and what to try."""
