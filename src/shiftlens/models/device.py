"""Device names, checked once: what a model loads onto, and where weight-only work (PCA, projections) runs."""

from __future__ import annotations

import torch

from shiftlens.models.errors import ModelLoadError

DEVICES = ("cpu", "cuda", "auto")


def check_device(device: str) -> str:
    """``device`` (cpu, cuda, cuda:N or auto), or a one-line error for another name or a CUDA that is not there."""
    if device not in DEVICES and not device.startswith("cuda:"):
        raise ModelLoadError(f"unknown device {device!r}; choose one of {', '.join(DEVICES)} or cuda:N")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ModelLoadError(f"device {device!r} asked for but CUDA is not available")
    return device


def compute_device(device: str) -> str:
    """Where weight-only work runs: the asked device, checked; "auto" = the GPU if there is one, else the CPU."""
    if check_device(device) != "auto":
        return device
    return "cuda" if torch.cuda.is_available() else "cpu"
