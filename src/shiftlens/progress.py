"""Progress bars for long work (rate and ETA shown); silent when SHIFTLENS_NO_PROGRESS is set."""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from typing import TypeVar

from tqdm.auto import tqdm

T = TypeVar("T")


def progress(items: Iterable[T], *, total: int | None = None, desc: str = "", unit: str = "it") -> Iterator[T]:
    """Wrap an iterable in a progress bar with ETA, written to stderr."""
    disable = bool(os.environ.get("SHIFTLENS_NO_PROGRESS"))
    yield from tqdm(items, total=total, desc=desc, unit=unit, disable=disable, dynamic_ncols=True)
