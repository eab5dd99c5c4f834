"""Run directories: a versioned manifest, one lock per directory, and atomic, checksummed work units.

Every long command (attribute, heads, ffn, annotate, compare) writes its results as units (one
example, one layer, ...). A unit is complete only once its JSON record, which holds the sha256 of
its array file, has been renamed into place; a killed run therefore never leaves a half-written unit,
and a corrupted array file (or record) is detected: recomputed on the next run, refused by readers.
The run loop over units (resume, failures, shards) is `shiftlens.runs`; the atomic writers are
`shiftlens.atomic` (re-exported here).
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
from collections.abc import Collection, Iterator
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
from safetensors.numpy import load_file, save

from shiftlens.atomic import (
    StorageError,
    _translate_os_errors,
    atomic_write_bytes,
    atomic_write_json,
    atomic_write_parquet,
    atomic_write_text,
    file_sha256,
    package_versions,
)

__all__ = [
    "FORMAT_VERSION",
    "RunDirectory",
    "Shard",
    "StorageError",
    "atomic_write_bytes",
    "atomic_write_json",
    "atomic_write_parquet",
    "atomic_write_text",
    "damaged_units",
    "file_sha256",
    "package_versions",
    "read_manifest",
    "read_units",
]
T = TypeVar("T")

FORMAT = "shiftlens-run"
FORMAT_VERSION = 2  # 2: one schema for every kind (shiftlens.runs.manifest); 1: shiftlens 0.1


def _create_exclusive(path: Path, obj: Any) -> bool:
    """Write JSON to ``path`` only if it does not exist yet (atomic link); False when it already did."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    atomic_write_json(tmp, obj)
    try:
        os.link(tmp, path)
        return True
    except FileExistsError:
        return False
    finally:
        tmp.unlink()


@dataclass(frozen=True)
class Shard:
    """Part ``index`` of ``count`` of a data-parallel run (job arrays, torchrun or accelerate ranks)."""

    index: int
    count: int

    def __post_init__(self) -> None:
        if not 0 <= self.index < self.count:
            raise StorageError(f"invalid shard {self.index}/{self.count}: need 0 <= i < n")

    @classmethod
    def parse(cls, text: str) -> Shard:
        """Parse ``i/n`` as given to ``--shard``."""
        try:
            index, count = (int(part) for part in text.split("/"))
        except ValueError as exc:
            raise StorageError(f"--shard takes i/n with whole numbers, got {text!r}") from exc
        return cls(index, count)

    @classmethod
    def from_environment(cls) -> Shard | None:
        """The shard of this process under torchrun or accelerate launch (RANK, WORLD_SIZE), if any."""
        world = int(os.environ.get("WORLD_SIZE", "1"))
        return cls(int(os.environ.get("RANK", "0")), world) if world > 1 else None

    def select(self, items: list[T]) -> list[T]:
        """This shard's items: every count-th one, starting at index (balanced and deterministic)."""
        return items[self.index :: self.count]


def json_object(path: Path) -> dict[str, Any]:
    """A JSON object from ``path``, or {} when it is absent or unreadable."""
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return value if isinstance(value, dict) else {}


def _load_record(path: Path) -> dict[str, Any] | None:
    """A unit's record, or None when it is absent or unreadable (then the unit counts as unfinished)."""
    record = json_object(path)
    return record if "meta" in record else None


def _intact(data: Path, record: dict[str, Any]) -> bool:
    """True when the unit has no arrays, or its array file matches the recorded checksum."""
    return not record.get("sha256") or (data.exists() and file_sha256(data) == record["sha256"])


def _checked_unit(units: Path, name: str) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """A unit's meta and arrays, refused with a clear error when its files are damaged."""
    record_path, data = units / f"{name}.json", units / f"{name}.safetensors"
    record = _load_record(record_path)
    problem = f"{record_path} is unreadable" if record is None else None
    if record is not None and not _intact(data, record):
        problem = f"{data} is missing or does not match its recorded checksum"
    if problem:
        from shiftlens.runs.lifecycle import rerun_hint

        raise StorageError(f"{problem}; {rerun_hint(units.parent)} to recompute that unit")
    return record["meta"], load_file(str(data)) if record.get("sha256") else {}


class RunDirectory:
    """A locked, resumable output directory of one kind of run with fixed parameters.

    Reopening a directory resumes it when kind and parameters match, and refuses otherwise; a second
    process opening the same directory at the same time is refused by an exclusive lock, which the
    operating system releases even when the holder is killed.
    """

    def __init__(
        self,
        path: str | Path,
        kind: str,
        params: dict[str, Any],
        info: dict[str, Any] | None = None,
        shard: Shard | None = None,
        *,
        force: bool = False,
        growing: Collection[str] = (),
    ):
        from shiftlens.runs.lifecycle import check_out, remove_run

        if force and shard is not None:
            raise StorageError("--force starts a whole run over: run it once without --shard, then the shards")
        self.path = check_out(path)
        self.kind = kind
        self.params = json.loads(json.dumps(params))
        self.shard = shard
        with _translate_os_errors(self.path):
            self.path.mkdir(parents=True, exist_ok=True)
            self._locks = [open(self.path / ".lock", "w")]  # noqa: SIM115 - held for the run's life
            if shard is not None:
                self._locks.append(open(self.path / f".lock-{shard.index}-of-{shard.count}", "w"))  # noqa: SIM115
        # A whole run holds the directory lock exclusively; shards share it and each holds its own.
        modes = [fcntl.LOCK_EX] if shard is None else [fcntl.LOCK_SH, fcntl.LOCK_EX]
        try:
            for handle, mode in zip(self._locks, modes):
                fcntl.flock(handle, mode | fcntl.LOCK_NB)
        except BlockingIOError as exc:
            self.close()
            what = "this shard of " if shard is not None else ""
            raise StorageError(
                f"{what}{self.path} is in use by another shiftlens process; wait for it to finish"
            ) from exc
        if force:
            remove_run(self.path, "--force")
        self.units_dir = self.path / "units"
        self._open_manifest(info or {}, growing)

    def _open_manifest(self, info: dict[str, Any], growing: Collection[str]) -> None:
        """Resume the stored manifest (its params equal, or only ``growing`` lists extended) or create it."""
        from shiftlens.runs.changes import SettingsChanged, extends
        from shiftlens.runs.lifecycle import invocation, refusal, resumed, threads_record

        manifest_path = self.path / "manifest.json"
        if manifest_path.exists():
            manifest = json.loads(manifest_path.read_text())
            problem = refusal(self.path, manifest, self.kind)
            if problem is None and manifest.get("params") != self.params:
                if not extends(manifest.get("params") or {}, self.params, growing):
                    problem = SettingsChanged(self.path, self.kind, manifest.get("params") or {}, self.params)
            if problem is not None:
                self.close()
                raise problem
            self.manifest = manifest
            updates = resumed(self.path, manifest, self.params)  # an extended run's extent, another thread count
            if self.shard is None and updates:
                self.update_manifest(**updates)
            return
        manifest = {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "kind": self.kind,
            "params": self.params,
            "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "command": invocation(),
            "versions": package_versions(),
            "threads": threads_record(),
            **info,
        }
        if not _create_exclusive(manifest_path, manifest):  # a parallel shard created it first
            return self._open_manifest(info, growing)
        self.manifest = manifest

    def update_manifest(self, **fields: Any) -> None:
        """Add or replace top-level manifest fields (e.g. a summary once the run completes).

        Call it from one process only (the whole run, or shard 0 after the others finished).
        """
        self.manifest.update(json.loads(json.dumps(fields)))
        atomic_write_json(self.path / "manifest.json", self.manifest)

    def close(self) -> None:
        """Release the directory locks."""
        for handle in self._locks:
            if not handle.closed:
                fcntl.flock(handle, fcntl.LOCK_UN)
                handle.close()

    def __enter__(self) -> RunDirectory:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _record(self, name: str) -> Path:
        if not name or "/" in name or name.startswith("."):
            raise ValueError(f"invalid unit name {name!r}")
        return self.units_dir / f"{name}.json"

    def has_unit(self, name: str) -> bool:
        """True when the unit is complete and its array file matches the recorded checksum."""
        record = _load_record(self._record(name))
        return record is not None and _intact(self.units_dir / f"{name}.safetensors", record)

    def write_unit(self, name: str, meta: dict[str, Any], arrays: dict[str, np.ndarray] | None = None) -> None:
        """Store one finished unit: arrays first, then the record that marks it complete."""
        record_path = self._record(name)
        record: dict[str, Any] = {"meta": json.loads(json.dumps(meta)), "sha256": None}
        if arrays:
            # Serialised in memory and written by Python, so a full disk is an OSError (named, translated).
            payload = save({k: np.ascontiguousarray(v) for k, v in arrays.items()})
            atomic_write_bytes(self.units_dir / f"{name}.safetensors", payload)
            record["sha256"] = hashlib.sha256(payload).hexdigest()
        atomic_write_json(record_path, record)

    def read_unit(self, name: str) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        """The meta dict and arrays of a complete unit."""
        return _checked_unit(self.units_dir, name)

    def remove_unit(self, name: str) -> None:
        """Delete a unit (its record first, so that it counts as unfinished at once)."""
        self._record(name).unlink(missing_ok=True)
        (self.units_dir / f"{name}.safetensors").unlink(missing_ok=True)

    def unit_names(self) -> list[str]:
        """Names of the recorded units, sorted."""
        if not self.units_dir.exists():
            return []
        return sorted(p.stem for p in self.units_dir.glob("*.json"))


def damaged_units(path: str | Path) -> list[str]:
    """The units of the run at ``path`` whose record is unreadable or whose array file fails its checksum."""
    units = Path(path) / "units"
    records = sorted(units.glob("*.json")) if units.is_dir() else []
    return [
        p.stem for p in records if (r := _load_record(p)) is None or not _intact(units / f"{p.stem}.safetensors", r)
    ]


def read_units(path: str | Path) -> Iterator[tuple[str, dict[str, Any], dict[str, np.ndarray]]]:
    """Read a finished run directory's units without locking it (for analyses of finished runs)."""
    units = Path(path) / "units"
    if not (Path(path) / "manifest.json").exists():
        raise StorageError(f"{path} is not a shiftlens run directory (no manifest.json)")
    for record_path in sorted(units.glob("*.json")):
        yield (record_path.stem, *_checked_unit(units, record_path.stem))


def read_manifest(path: str | Path) -> dict[str, Any]:
    """A run directory's manifest."""
    manifest = Path(path) / "manifest.json"
    if not manifest.exists():
        raise StorageError(f"{path} is not a shiftlens run directory (no manifest.json)")
    return json.loads(manifest.read_text())
