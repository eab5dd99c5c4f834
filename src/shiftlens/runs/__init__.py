"""One run engine for every method (`execute`), the manifest schema they share and the errors of runs.

The names are imported on first use: `shiftlens.runs.lifecycle` and `shiftlens.runs.manifest` (an output
directory and a run's kind checked) load without torch.
"""

from shiftlens.lazy import lazy_names

_NAMES = {
    **dict.fromkeys(("Job", "Unit", "UnitData", "execute", "placed", "shard_failures_path"), "shiftlens.runs.engine"),
    **dict.fromkeys(("OldRunFormat", "RunFailures", "WrongRunKind"), "shiftlens.runs.errors"),
    **dict.fromkeys(
        ("VOCABULARY_FILE", "check_kind", "model_key", "model_record", "read_vocabulary", "store_vocabulary"),
        "shiftlens.runs.manifest",
    ),
}
__all__ = sorted(_NAMES)
__getattr__, __dir__ = lazy_names(__name__, _NAMES)
