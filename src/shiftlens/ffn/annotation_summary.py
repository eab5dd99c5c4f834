"""Statistics of an annotation run's labels: status counts, per-run shares of nameable concepts, tasks, levels."""

from __future__ import annotations

from typing import Any

from shiftlens.ffn import prompts
from shiftlens.ffn.labels import OK, SKIPPED, UNPARSEABLE, Annotator, Label


def label_summary(labels: dict[tuple[int, int, int], Label], annotator: Annotator, runs: int) -> dict[str, Any]:
    """Counts and per-run shares for the JSON summary."""
    statuses = {
        q: {s: sum(1 for lab in labels.values() if lab.status[q] == s) for s in (OK, UNPARSEABLE, SKIPPED)}
        for q in ("concept", "tasks", "level")
    }
    per_run = []
    for run in range(runs):
        named = [lab for (_, _, r), lab in labels.items() if r == run and lab.nameable]
        total = sum(1 for (_, _, r) in labels if r == run)
        with_tasks = [lab for lab in named if lab.status["tasks"] == OK]
        with_level = [lab for lab in named if lab.status["level"] == OK]
        per_run.append(
            {
                "run": run,
                "nameable_share": len(named) / total if total else None,
                "tasks": {t: _share(sum(t in lab.tasks for lab in with_tasks), len(with_tasks)) for t in prompts.TASKS},
                "levels": {
                    v: _share(sum(lab.level == v for lab in with_level), len(with_level)) for v in prompts.LEVELS
                },
            }
        )
    return {
        **annotator.describe(),
        "runs": runs,
        "n_labels": len(labels),
        "statuses": statuses,
        "per_run": per_run,
    }


def _share(count: int, total: int) -> float | None:
    return count / total if total else None
