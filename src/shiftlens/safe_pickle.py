"""A restricted unpickler for released third-party pickles: plain containers and numpy arrays only.

Unpickling can run arbitrary code (any importable callable can be named as a global and called).
`load_restricted` admits only the global names numpy's own array pickling needs (and a latin-1-only
`_codecs.encode`, which protocol ≤ 2 uses for bytes); anything else is refused before it is imported,
so a malicious pickle raises `UnsafePickleError` instead of executing. The loaded object must then
consist of dict, list, tuple, str, int, float, bool, None and non-object numpy arrays only.
"""

from __future__ import annotations

import io
import pickle
from pathlib import Path
from typing import Any

import numpy as np

from shiftlens.errors import ShiftlensError

# numpy's array rebuild functions (protocol ≤ 4 and protocol 5), whatever their module path
_RECONSTRUCT = np.empty(0).__reduce__()[0]
_FROMBUFFER = np.empty(0).__reduce_ex__(5)[0]
PLAIN_TYPES = (dict, list, tuple, str, int, float, bool, type(None))


def _latin1_encode(text: str, encoding: str = "utf-8") -> bytes:
    """Protocol ≤ 2 pickles spell bytes as _codecs.encode(text, "latin1"); only that codec is allowed."""
    if encoding.replace("-", "").lower() != "latin1":
        raise UnsafePickleError(f"refusing _codecs.encode with codec {encoding!r}")
    return text.encode("latin1")


# The global names (module, name) that numpy writes when pickling an ndarray or a dtype, under both
# the numpy < 2 module path (numpy.core) and the numpy ≥ 2 one (numpy._core).
ALLOWED_GLOBALS: dict[tuple[str, str], Any] = {
    ("numpy.core.multiarray", "_reconstruct"): _RECONSTRUCT,
    ("numpy._core.multiarray", "_reconstruct"): _RECONSTRUCT,
    ("numpy.core.numeric", "_frombuffer"): _FROMBUFFER,
    ("numpy._core.numeric", "_frombuffer"): _FROMBUFFER,
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
    ("_codecs", "encode"): _latin1_encode,
}


class UnsafePickleError(ShiftlensError):
    """A pickle names a global outside the allowed set, or is not a readable pickle at all."""


class _RestrictedUnpickler(pickle.Unpickler):
    def __init__(self, handle: io.BufferedIOBase, source: str) -> None:
        super().__init__(handle)
        self._source = source

    def find_class(self, module: str, name: str) -> Any:
        try:
            return ALLOWED_GLOBALS[(module, name)]
        except KeyError:
            raise UnsafePickleError(
                f"{self._source}: refusing to load global {module}.{name}; only plain containers, numbers, "
                "strings and numpy arrays are allowed in released data pickles"
            ) from None

    def persistent_load(self, pid: Any) -> Any:
        raise UnsafePickleError(f"{self._source}: persistent references are not allowed")


def _check_plain(obj: Any, source: str) -> None:
    stack = [obj]
    while stack:
        item = stack.pop()
        if isinstance(item, np.ndarray) and item.dtype != object:
            continue
        if type(item) not in PLAIN_TYPES:
            raise UnsafePickleError(f"{source}: holds a {type(item).__name__}, which released data may not contain")
        if isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list | tuple):
            stack.extend(item)


def loads_restricted(data: bytes, source: str = "<bytes>") -> Any:
    """Unpickle bytes with only containers, numbers, strings and numpy arrays allowed."""
    try:
        obj = _RestrictedUnpickler(io.BytesIO(data), source).load()
    except UnsafePickleError as exc:
        if source not in str(exc):
            raise UnsafePickleError(f"{source}: {exc}") from None
        raise
    except Exception as exc:  # a corrupt stream can raise almost anything from inside pickle
        raise UnsafePickleError(f"{source}: not a readable pickle ({type(exc).__name__}: {exc})") from exc
    _check_plain(obj, source)
    return obj


def load_restricted(path: str | Path) -> Any:
    """Unpickle a file with only containers, numbers, strings and numpy arrays allowed."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise UnsafePickleError(f"cannot read {path}: {exc.strerror}") from exc
    return loads_restricted(data, str(path))
