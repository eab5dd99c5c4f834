"""FFN label rows for tests, as `shiftlens.ffn.labels.read_labels` returns them."""

from __future__ import annotations

from typing import Any


def label(
    layer: int,
    component: int,
    run: int = 0,
    tasks: tuple[str, ...] | list[str] = (),
    level: str = "semantics",
    nameable: bool = True,
    tasks_status: str = "ok",
    level_status: str = "ok",
) -> dict[str, Any]:
    """One label row as `read_labels` returns it."""
    return {
        "layer": layer,
        "component": component,
        "run": run,
        "nameable": nameable,
        "concept": "c" if nameable else None,
        "tasks": list(tasks) if nameable else None,
        "level": level if nameable else None,
        "tasks_status": tasks_status if nameable else "skipped",
        "level_status": level_status if nameable else "skipped",
    }
