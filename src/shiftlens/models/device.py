"""Device names, checked once: what a model loads onto, and where weight-only work (PCA, projections) runs.

torch is imported only to ask about CUDA, so a spec is named and its name checked without it.
"""

from __future__ import annotations

import functools
import logging
import os

from shiftlens.models.errors import ModelLoadError

DEVICES = ("cpu", "cuda", "auto")


def _cuda_available() -> bool:
    """torch's answer, asked only when a CUDA device or "auto" is to be resolved."""
    import torch

    return torch.cuda.is_available()


def check_device(device: str) -> str:
    """``device`` (cpu, cuda, cuda:N or auto), or a one-line error for another name or a CUDA that is not there."""
    if device not in DEVICES and not device.startswith("cuda:"):
        raise ModelLoadError(f"unknown device {device!r}; choose one of {', '.join(DEVICES)} or cuda:N")
    if device.startswith("cuda") and not _cuda_available():
        raise ModelLoadError(f"device {device!r} asked for but CUDA is not available")
    return device


def compute_device(device: str) -> str:
    """Where weight-only work runs: the asked device, checked; "auto" = the GPU if there is one, else the CPU."""
    if check_device(device) != "auto":
        return device
    return "cuda" if _cuda_available() else "cpu"


@functools.cache
def auto_device() -> str:
    """What ``auto`` loads onto here, said once in the log: cpu without CUDA, else cuda (one GPU, or one per
    torchrun / accelerate rank), or accelerate's device map ("auto") over several GPUs in one process."""
    import torch

    if not torch.cuda.is_available():
        device, why = "cpu", "no CUDA"
    elif torch.cuda.device_count() > 1 and "LOCAL_RANK" not in os.environ:
        device, why = "auto", f"accelerate device map over {torch.cuda.device_count()} GPUs"
    else:
        device, why = "cuda", torch.cuda.get_device_name(0)
    logging.getLogger("shiftlens").info("device: %s (%s)", device, why)
    return device
