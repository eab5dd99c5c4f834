"""Data-parallel runs under ``torchrun`` or ``accelerate launch``: this process's shard, its device, a barrier.

Ranks exchange no tensors: each writes its units into the shared run directory, then all meet at a
barrier and rank 0 merges. The process group comes from the launcher's environment (``env://``) unless
the caller already created one; gloo on CPU, NCCL on CUDA.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from typing import TypeVar

import torch
import torch.distributed as dist

from shiftlens.errors import ShiftlensError
from shiftlens.storage import Shard

T = TypeVar("T")

# Shards of long examples can finish hours apart; a rank that crashes still reaches the barriers (see
# `run_then_merge`), and a killed one makes the launcher stop the others, so a long wait is safe.
BARRIER_TIMEOUT = timedelta(hours=48)


@dataclass(frozen=True)
class Launch:
    """This process: rank ``shard.index`` of ``shard.count`` started by a launcher, ``local_rank`` on its node."""

    shard: Shard
    local_rank: int


def launched() -> Launch | None:
    """The launch this process belongs to (WORLD_SIZE > 1, RANK, LOCAL_RANK in the environment), else None."""
    shard = Shard.from_environment()
    return None if shard is None else Launch(shard, int(os.environ.get("LOCAL_RANK", "0")))


def rank_device(device: str, launch: Launch) -> str:
    """The device of one rank: ``cuda`` becomes ``cuda:LOCAL_RANK``; ``auto`` (one model over all GPUs) is refused."""
    if device == "auto":
        raise ShiftlensError(
            "--device auto spreads one model over all GPUs in a single process; run it without torchrun or "
            "accelerate launch, or use --device cuda to give each rank its own GPU"
        )
    return f"cuda:{launch.local_rank}" if device == "cuda" else device


@contextmanager
def process_group(device: str) -> Iterator[None]:
    """A default process group for the duration (NCCL for a CUDA device, else gloo), unless one exists."""
    if dist.is_initialized():
        yield
        return
    backend = "nccl" if device.startswith("cuda") else "gloo"
    if backend == "nccl":
        torch.cuda.set_device(torch.device(device))
    dist.init_process_group(backend, init_method="env://", timeout=BARRIER_TIMEOUT)
    try:
        yield
    finally:
        dist.destroy_process_group()


def run_then_merge(work: Callable[[], object], merge: Callable[[], T]) -> T | None:
    """Run ``work`` on every rank, then ``merge`` on rank 0 once every rank's work has ended; rank 0 gets its result.

    Every rank reaches both barriers even when its work or the merge raises, so no rank waits for one
    that failed; the error is raised afterwards (the work's first, else the merge's).
    """
    error: BaseException | None = None
    try:
        work()
    except BaseException as exc:  # noqa: BLE001 - re-raised below, after the other ranks are released
        error = exc
    dist.barrier()
    result = None
    if dist.get_rank() == 0:
        try:
            result = merge()
        except BaseException as exc:  # noqa: BLE001 - same
            error = error or exc
    dist.barrier()
    if error is not None:
        raise error
    return result
