"""Packages whose public names are imported on first use (a module-level ``__getattr__``), so that importing
one for its settings, constants or checks does not import torch, scipy or pyarrow (the command line builds
its parser and checks its inputs before any of them loads)."""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from typing import Any


def lazy_names(package: str, names: Mapping[str, str]) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """``__getattr__`` and ``__dir__`` for ``package``: each of ``names`` (public name -> the module that
    defines it) is imported on first access; any other name is an `AttributeError`."""

    def __getattr__(name: str) -> Any:
        if name in names:
            return getattr(importlib.import_module(names[name]), name)
        raise AttributeError(f"module {package!r} has no attribute {name!r}")

    def __dir__() -> list[str]:
        return sorted(names)

    return __getattr__, __dir__
