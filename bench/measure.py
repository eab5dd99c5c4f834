"""Measurement helpers shared by the bench scripts: peak memory growth, process CPU time, a timed call.

Torch is imported on use, so a script that only spawns workers need not load it.
"""

from __future__ import annotations

import resource
import threading
import time
from collections.abc import Callable
from typing import Any

import psutil


def _is_cuda(device: Any) -> bool:
    return str(device).startswith("cuda")


class PeakMemory:
    """Peak memory growth during a block: CUDA max_memory_allocated, else RSS sampled every 10 ms (psutil)."""

    def __init__(self, device: Any) -> None:
        self.device = device
        self.peak = 0

    def __enter__(self) -> PeakMemory:
        if _is_cuda(self.device):
            import torch

            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
            self.base = torch.cuda.memory_allocated()
            return self
        self.process = psutil.Process()
        self.base = self.process.memory_info().rss
        self.running = True
        self.thread = threading.Thread(target=self._sample, daemon=True)
        self.thread.start()
        return self

    def _sample(self) -> None:
        while self.running:
            self.peak = max(self.peak, self.process.memory_info().rss - self.base)
            time.sleep(0.01)

    def __exit__(self, *exc: object) -> None:
        if _is_cuda(self.device):
            import torch

            torch.cuda.synchronize()
            self.peak = torch.cuda.max_memory_allocated() - self.base
        else:
            self.running = False
            self.thread.join()


def cpu_seconds() -> float:
    """User + system CPU seconds of this process, all threads (`resource.getrusage`)."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def timed(device: Any, fn: Callable[[], Any]) -> tuple[float, float, int, Any]:
    """(wall seconds, process CPU seconds, peak memory growth in bytes, result) of one call.

    CPU time next to wall time shows what contention costs: on a busy machine the wall time grows by the
    share of the cores lost to others, while CPU time grows only when threads spin (OpenMP barriers).
    """
    with PeakMemory(device) as memory:
        start, cpu = time.perf_counter(), cpu_seconds()
        result = fn()
        if _is_cuda(device):
            import torch

            torch.cuda.synchronize()
        seconds, cpu = time.perf_counter() - start, cpu_seconds() - cpu
    return seconds, cpu, memory.peak, result
