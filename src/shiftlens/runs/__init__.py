"""One run engine for every method (`execute`), the manifest schema they share and the errors of runs."""

from shiftlens.runs.engine import Job, Unit, UnitData, execute, placed, shard_failures_path
from shiftlens.runs.errors import OldRunFormat, RunFailures, WrongRunKind
from shiftlens.runs.manifest import (
    VOCABULARY_FILE,
    check_kind,
    model_key,
    model_record,
    read_vocabulary,
    store_vocabulary,
)

__all__ = [
    "VOCABULARY_FILE",
    "Job",
    "OldRunFormat",
    "RunFailures",
    "Unit",
    "UnitData",
    "WrongRunKind",
    "check_kind",
    "execute",
    "model_key",
    "model_record",
    "placed",
    "read_vocabulary",
    "shard_failures_path",
    "store_vocabulary",
]
