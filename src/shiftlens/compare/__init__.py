"""Compare a base and an instruction-tuned model through every method, with one report (`shiftlens compare`).

The package is callable: ``shiftlens.compare(base, tuned, ...)`` is `shiftlens.compare.pipeline.compare`
(the public function shares its name with this package, which Python binds as ``shiftlens.compare``). The
names are imported on first use, so that `shiftlens.compare.settings` loads without torch or scipy.
"""

import sys
import types
from typing import TYPE_CHECKING, Any

from shiftlens.lazy import lazy_names

if TYPE_CHECKING:
    from shiftlens.compare.pipeline import CompareSummary

_NAMES = {
    **dict.fromkeys(("CompareIncomplete", "CompareSummary", "compare"), "shiftlens.compare.pipeline"),
    **dict.fromkeys(("CompareSettings", "ModelSpec"), "shiftlens.compare.settings"),
    "TokenizerMismatch": "shiftlens.compare.tokenizers",
    "read_results": "shiftlens.compare.results",
}
__all__ = sorted(_NAMES)
__getattr__, __dir__ = lazy_names(__name__, _NAMES)


class _CallablePackage(types.ModuleType):
    """This package, callable as the `compare` function."""

    def __call__(self, *args: Any, **kwargs: Any) -> "CompareSummary":
        """Run `shiftlens.compare.pipeline.compare`."""
        return self.compare(*args, **kwargs)


sys.modules[__name__].__class__ = _CallablePackage
