"""The one run engine: units not done → progress → compute one unit → atomic write → failure record → tables.

A method supplies a `Job`: the units it wants, how to compute one, and a finish step writing its tables.
The engine gives every method the same behaviour: a resumed run computes only the units not stored; a
unit that raises a `ShiftlensError` (or runs out of GPU memory) is recorded under ``failed`` and the run
goes on, ending with `RunFailures` (exit code 2). ``--shard i/n`` computes every n-th unit from i and
records its failures in its own file, never touching manifest.json; the rerun without ``--shard``
merges (computing nothing stored). Under torchrun / accelerate launch each rank takes its shard, the
ranks meet, and rank 0 merges (`shiftlens.distributed`).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import torch

from shiftlens.distributed import Launch, process_group, rank_device, run_then_merge
from shiftlens.errors import ShiftlensError
from shiftlens.progress import progress
from shiftlens.runs.errors import RunFailures
from shiftlens.runs.lifecycle import check_out
from shiftlens.storage import RunDirectory, Shard, atomic_write_json

IN_MANIFEST = "listed under 'failed' in manifest.json"
NOT_COMPUTED = "not computed (its shard did not finish)"
M = TypeVar("M")


@dataclass(frozen=True)
class Unit:
    """One unit of work: its name in the run directory and the key failures are listed under."""

    name: str
    key: str


UnitData = tuple[dict[str, Any], dict[str, np.ndarray]]


class Job:
    """One method's run, its model ready: kind, identity (``params``), recorded ``info`` and its units.

    Subclasses set the attributes and implement `units`, `compute` and `finish`; `prepare` builds the
    inputs shared by all units (only when some unit is to be computed). ``fatal`` errors stop the run
    (e.g. an endpoint that is down for every unit) instead of being recorded per unit.
    """

    kind: str
    noun: str
    params: dict[str, Any]
    info: dict[str, Any]
    fatal: tuple[type[BaseException], ...] = ()

    def units(self) -> Sequence[Unit]:
        """Every unit of the run, in order."""
        raise NotImplementedError

    def prepare(self, todo: Sequence[Unit]) -> None:
        """Build what every unit needs, once, before the first one is computed."""

    def compute(self, unit: Unit) -> UnitData:
        """The meta and arrays of one unit."""
        raise NotImplementedError

    def finish(self, run: RunDirectory, failed: dict[str, str]) -> None:
        """Write the method's tables and manifest fields once every process has ended."""

    def open(self, out: Path, shard: Shard | None = None, force: bool = False) -> RunDirectory:
        """The run directory, whole (exclusive) or as one shard of it; ``force`` deletes a stored run first."""
        return RunDirectory(out, self.kind, self.params, self.info, shard=shard, force=force)


def _check_placement(shard: Shard | None, launch: Launch | None) -> None:
    """Refuse --shard under a launcher (each rank already takes its own shard)."""
    if launch is not None and shard is not None:
        raise ShiftlensError(
            f"--shard {shard.index}/{shard.count} cannot be combined with torchrun or accelerate launch "
            f"(WORLD_SIZE={launch.shard.count}): each rank already takes its own shard"
        )


def placed(model: M, shard: Shard | None, launch: Launch | None) -> M:
    """The model as this process uses it, checked before any run directory exists (`ModelSpec.check`).

    A rank's `ModelSpec` gets its own GPU; --shard under a launcher is refused.
    """
    _check_placement(shard, launch)
    device = getattr(model, "device", None)
    if not (isinstance(device, str) and hasattr(model, "load")):  # a loaded model, not a ModelSpec
        return model
    spec = model if launch is None else replace(model, device=rank_device(device, launch))
    spec.check()
    return spec


def shard_failures_path(out: str | Path, shard: Shard) -> Path:
    """Where a shard records its failed units (shards never write manifest.json, the merge does)."""
    return Path(out) / "failures" / f"shard-{shard.index}-of-{shard.count}.json"


def _compute(
    run: RunDirectory, units: Sequence[Unit], job: Job, record: Callable[[dict[str, str]], None], desc: str
) -> dict[str, str]:
    """Compute and store every unit not stored yet; failures go to ``record(failed)`` as they occur."""
    failed: dict[str, str] = {}
    todo = [u for u in units if not run.has_unit(u.name)]
    if todo:
        job.prepare(todo)
    for unit in progress(todo, total=len(todo), desc=desc, unit=job.noun):
        try:
            meta, arrays = job.compute(unit)
        except job.fatal:
            raise
        except (ShiftlensError, torch.cuda.OutOfMemoryError) as exc:
            failed[unit.key] = str(exc)
            record(failed)
            continue
        run.write_unit(unit.name, meta, arrays)  # a storage error (disk full) stops the run: resuming continues it
    return failed


def _finish(run: RunDirectory, job: Job, failed: dict[str, str]) -> dict[str, str]:
    """Counts and failures into the manifest, the method's tables; shard failure files are folded in and removed.

    Returns every unit not stored with its reason (a unit nobody finished is "not computed").
    """
    units = job.units()
    missing = {u.key: failed.get(u.key, NOT_COMPUTED) for u in units if not run.has_unit(u.name)}
    counts = {f"{job.noun}s": len(units), "stored": len(units) - len(missing), "failed": len(missing)}
    run.update_manifest(failed=missing, counts=counts, complete=not missing)
    job.finish(run, missing)
    for path in sorted((run.path / "failures").glob("shard-*.json")):
        path.unlink()
    return missing


def _run_whole(job: Job, out: Path, force: bool) -> dict[str, str]:
    """Compute every unit not stored yet (also the merge of a sharded run), then finish the run."""
    with job.open(out, force=force) as run:
        failed = _compute(run, job.units(), job, lambda f: run.update_manifest(failed=f), job.kind)
        return _finish(run, job, failed)


def _run_shard(job: Job, out: Path, shard: Shard) -> dict[str, str]:
    """Compute one shard's units into ``out``; its failures go to its own file. Returns them."""
    path = shard_failures_path(out, shard)
    with job.open(out, shard) as run:
        units = shard.select(list(job.units()))
        desc = f"{job.kind} {shard.index}/{shard.count}"
        failed = _compute(run, units, job, lambda f: atomic_write_json(path, f), desc)
        atomic_write_json(path, failed)
    return failed


def _merge_shards(job: Job, out: Path) -> dict[str, str]:
    """Rank 0's merge after every rank finished: nothing is computed, shard failures are collected."""
    with job.open(out) as run:
        failed: dict[str, str] = {}
        for path in sorted((run.path / "failures").glob("shard-*.json")):
            failed.update(json.loads(path.read_text(encoding="utf-8")))
        return _finish(run, job, failed)


def execute(
    setup: Callable[[], Job],
    out: str | Path,
    *,
    shard: Shard | None = None,
    launch: Launch | None = None,
    device: str = "cpu",
    force: bool = False,
) -> Path:
    """Run the job ``setup()`` builds into ``out`` (whole, one ``shard``, or one rank of a ``launch``); returns ``out``.

    ``setup`` loads the model and is called inside each rank's work, so that a rank failing to load still
    meets the others. ``force`` deletes a run stored in ``out`` first (a whole run only). Raises
    `RunFailures` once every unit was tried if any failed (finished ones stay stored).
    """
    out = check_out(out)
    _check_placement(shard, launch)
    if force and (shard is not None or launch is not None):
        raise ShiftlensError("--force starts a whole run over: run it once without --shard or a launcher first")
    jobs: list[Job] = []
    if launch is None:
        jobs.append(setup())
        if shard is None:
            failed, where = _run_whole(jobs[0], out, force), IN_MANIFEST
        else:
            failed = _run_shard(jobs[0], out, shard)
            where = f"listed in {shard_failures_path(out, shard)}; rerun without --shard to merge and retry them"
    else:

        def work() -> None:
            jobs.append(setup())
            _run_shard(jobs[0], out, launch.shard)

        with process_group(device):
            failed = run_then_merge(work, lambda: _merge_shards(jobs[0], out)) or {}
        where = IN_MANIFEST
    if failed:
        units = jobs[0].units()
        total = len(units) if shard is None else len(shard.select(list(units)))
        raise RunFailures(out, failed, total, jobs[0].noun, where)
    return out
