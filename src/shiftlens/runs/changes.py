"""What changed between a stored run's identity and the one asked for, said as ``name: old → new`` lines."""

from __future__ import annotations

from collections.abc import Collection
from pathlib import Path
from typing import Any

from shiftlens.atomic import StorageError

LONG = 4  # lists longer than this are summarised (their length and first difference)


def flatten(params: Any, prefix: str = "") -> dict[str, Any]:
    """Nested dicts as one level of dotted names (``settings.attribution.max_new_tokens``); lists are leaves."""
    if not isinstance(params, dict) or (prefix and not params):
        return {prefix: params}
    out: dict[str, Any] = {}
    for key in sorted(params):
        out.update(flatten(params[key], f"{prefix}.{key}" if prefix else str(key)))
    return out


def _shown(value: Any, long: bool = False) -> str:
    """A value as a change line shows it; a list, when either side is long, as its length."""
    if isinstance(value, list) and long:
        return f"{len(value)} items"
    return "(none)" if value is None else repr(value) if isinstance(value, str) else str(value)


def _change(name: str, old: Any, new: Any) -> str:
    """One ``name: old → new`` line; long lists as their lengths and where they first differ."""
    lists = isinstance(old, list) and isinstance(new, list)
    long = any(isinstance(v, list) and len(v) > LONG for v in (old, new))
    line = f"{name}: {_shown(old, long)} → {_shown(new, long)}"
    if lists and long:
        first = next((i for i, (a, b) in enumerate(zip(old, new)) if a != b), min(len(old), len(new)))
        if first < min(len(old), len(new)):
            line += f" (first difference at [{first}]: {_shown(old[first])} → {_shown(new[first])})"
    return line


def describe_changes(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    """Every identity field that differs, as ``name: old → new`` (nested names joined with dots)."""
    before, after = flatten(old), flatten(new)
    return [
        _change(name, before.get(name), after.get(name))
        for name in sorted(set(before) | set(after))
        if before.get(name) != after.get(name)
    ]


def extends(old: dict[str, Any], new: dict[str, Any], growing: Collection[str]) -> bool:
    """True when ``new`` only extends ``old``: equal but for ``growing`` lists, each the old one plus more."""
    if {k: v for k, v in old.items() if k not in growing} != {k: v for k, v in new.items() if k not in growing}:
        return False
    return all(
        isinstance(old.get(k), list) and isinstance(new.get(k), list) and new[k][: len(old[k])] == old[k]
        for k in growing
    )


class SettingsChanged(StorageError):
    """A run directory holds a run of other settings; the message lists each change and what to do."""

    def __init__(self, path: Path, kind: str, old: dict[str, Any], new: dict[str, Any]):
        self.path, self.changes = path, describe_changes(old, new)
        super().__init__(
            f"{path} holds a {kind} run with other settings ({'; '.join(self.changes)}): rerun with the stored "
            "settings to resume it, add --force (force=True) to delete it and start over, or use a new --out"
        )
