"""Models: the spec that names one (`ModelSpec`) and, through it, loading."""

from shiftlens.models.spec import ModelSpec

__all__ = ["ModelSpec"]
