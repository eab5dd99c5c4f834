"""Concept labels: one per (layer, component, run), from an LLM or the offline lexical heuristic.

Stored as ``labels.parquet`` in an annotation run directory (see `write_labels`); the analysis reads
them back with `read_labels`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import pyarrow as pa
import pyarrow.parquet as pq

from shiftlens.errors import ShiftlensError
from shiftlens.runs.manifest import check_kind
from shiftlens.storage import atomic_write_parquet

KIND = "ffn-annotations"  # the run kind of an annotation directory
LABELS_FILE = "labels.parquet"
SUMMARY_FILE = "summary.json"
OK, UNPARSEABLE, SKIPPED = "ok", "unparseable", "skipped"


@dataclass
class Label:
    """One annotation of a component's word list: concept (None: cannot tell), tasks and level.

    ``status`` says per question ("concept", "tasks", "level") whether the answer was ok, unparseable or
    skipped (tasks and level are asked for nameable concepts only). An endpoint that keeps failing stops
    the run instead (nothing to label), so that a rerun asks again.
    """

    concept: str | None = None
    tasks: list[str] | None = None
    level: str | None = None
    status: dict[str, str] = field(default_factory=lambda: {"concept": SKIPPED, "tasks": SKIPPED, "level": SKIPPED})

    @property
    def nameable(self) -> bool:
        """True when a concept was named."""
        return self.status["concept"] == OK and self.concept is not None


class Annotator(Protocol):
    """Anything that labels a word list; ``run`` is the repetition index (0-based)."""

    heuristic: bool

    def label(self, words: list[str], run: int) -> Label: ...

    def describe(self) -> dict: ...


SCHEMA = pa.schema(
    [
        ("layer", pa.int32()),
        ("component", pa.int32()),
        ("run", pa.int32()),
        ("nameable", pa.bool_()),
        ("concept", pa.string()),
        ("tasks", pa.list_(pa.string())),
        ("level", pa.string()),
        ("concept_status", pa.string()),
        ("tasks_status", pa.string()),
        ("level_status", pa.string()),
        ("heuristic", pa.bool_()),
    ]
)


def write_labels(path: Path, labels: dict[tuple[int, int, int], Label], heuristic: bool) -> None:
    """Write labels sorted by (layer, component, run) as Parquet, atomically."""
    rows: dict[str, list] = {name: [] for name in SCHEMA.names}
    for (layer, component, run), label in sorted(labels.items()):
        values = (layer, component, run, label.nameable, label.concept, label.tasks, label.level)
        for name, value in zip(SCHEMA.names, values):
            rows[name].append(value)
        for question in ("concept", "tasks", "level"):
            rows[f"{question}_status"].append(label.status[question])
        rows["heuristic"].append(heuristic)
    atomic_write_parquet(path, pa.table(rows, schema=SCHEMA))


def read_labels(path: str | Path) -> list[dict]:
    """Label rows of ``labels.parquet`` (a file or the annotation directory holding it)."""
    path = Path(path)
    if path.is_dir():
        if (path / "manifest.json").exists():
            check_kind(path, KIND)
        path = path / LABELS_FILE
    if not path.exists():
        raise ShiftlensError(f"no labels at {path}; run 'shiftlens annotate' first")
    return pq.read_table(path).to_pylist()
