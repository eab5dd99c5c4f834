"""Compare a base and an instruction-tuned model through every method, with one report (`shiftlens compare`)."""

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
