"""Atomic writes: readers see either a file's old content or the whole new one, and OS errors become one line.

A full disk, a read-only directory or a missing permission is a `StorageError` naming the path and what
to do, whatever is written (bytes, text, JSON or a Parquet table).
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import io
import json
import os
import platform
import tempfile
from collections.abc import Iterator
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any

from shiftlens.errors import ShiftlensError

if TYPE_CHECKING:
    import pyarrow as pa


class StorageError(ShiftlensError, RuntimeError):
    """The output directory cannot be used (not writable, full, locked or holding another run)."""


def _storage_error(path: Path, exc: OSError) -> StorageError:
    if exc.errno == errno.ENOSPC:
        return StorageError(f"no space left on the device holding {path}; free space and rerun to resume")
    if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return StorageError(f"cannot write to {path}: {exc.strerror}; choose a writable --out")
    return StorageError(f"cannot write {path}: {exc}")


@contextlib.contextmanager
def _translate_os_errors(path: Path) -> Iterator[None]:
    try:
        yield
    except OSError as exc:
        raise _storage_error(path, exc) from exc


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write a file so that readers see either the old content or the whole new one."""
    path = Path(path)
    with _translate_os_errors(path):
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp, path)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            raise


def atomic_write_text(path: Path, text: str) -> None:
    """Atomic UTF-8 text write."""
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: Path, obj: Any) -> None:
    """Atomic JSON write (sorted keys, UTF-8, indented for reading)."""
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=True, ensure_ascii=False) + "\n")


def atomic_write_parquet(path: Path, table: pa.Table) -> None:
    """Atomic Parquet write (serialised in memory, so a full disk is a `StorageError` too)."""
    import pyarrow.parquet as pq

    sink = io.BytesIO()
    pq.write_table(table, sink)
    atomic_write_bytes(path, sink.getvalue())


def package_versions(names: tuple[str, ...] = ("shiftlens", "torch", "transformers", "numpy")) -> dict:
    """Installed versions of the packages a result depends on, for manifests."""
    versions = {"python": platform.python_version()}
    for name in names:
        with contextlib.suppress(metadata.PackageNotFoundError):
            versions[name] = metadata.version(name)
    return versions


def file_sha256(path: str | Path) -> str:
    """The SHA-256 of a file, read in blocks (run parameters record the inputs' hashes)."""
    digest = hashlib.sha256()
    with Path(path).open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
