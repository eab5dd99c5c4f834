"""Compare a base and an instruction-tuned model through every method, with one report (`shiftlens compare`).

The package is callable: ``shiftlens.compare(base, tuned, ...)`` is `shiftlens.compare.pipeline.compare`
(the public function shares its name with this package, which Python binds as ``shiftlens.compare``).
"""

import sys
import types
from typing import Any

from shiftlens.compare.pipeline import CompareIncomplete, CompareSummary, compare
from shiftlens.compare.results import read_results
from shiftlens.compare.settings import CompareSettings, ModelSpec
from shiftlens.compare.tokenizers import TokenizerMismatch

__all__ = [
    "CompareIncomplete",
    "CompareSettings",
    "CompareSummary",
    "ModelSpec",
    "TokenizerMismatch",
    "compare",
    "read_results",
]


class _CallablePackage(types.ModuleType):
    """This package, callable as the `compare` function."""

    def __call__(self, *args: Any, **kwargs: Any) -> CompareSummary:
        """Run `shiftlens.compare.pipeline.compare`."""
        return compare(*args, **kwargs)


sys.modules[__name__].__class__ = _CallablePackage
