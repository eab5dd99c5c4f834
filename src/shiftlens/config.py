"""Settings fields declared once: default, one-line help, allowed values and whether a field fixes a result.

Every method's settings dataclass declares its fields with `setting`; the CLI flags, their defaults,
help and ``choices`` are generated from this metadata, and a run's manifest records `identity` (the
fields that fix the stored numbers, checked on resume) apart from `summary` (fields that only change
speed or the tables computed from the stored units).
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Sequence
from typing import Any

from shiftlens.errors import ShiftlensError


def setting(
    default: Any,
    help: str,
    *,
    choices: Sequence[Any] | None = None,
    identity: bool = True,
    flag: str | None = None,
    metavar: str | None = None,
    prefix: str = "",
    old_flags: Sequence[str] = (),
) -> Any:
    """A dataclass field of a settings object; ``identity=False`` marks fields that never change stored units.

    A field holding a nested settings dataclass has its fields' flags after ``prefix`` (none by default:
    flattened into the outer group); ``flag`` replaces the generated ``--field-name``; ``old_flags`` are
    former spellings, still accepted with a warning that names the new one.
    """
    metadata = {"help": help, "choices": tuple(choices) if choices else None, "identity": identity}
    metadata.update(flag=flag, metavar=metavar, prefix=prefix, old_flags=tuple(old_flags))
    if isinstance(default, (list, dict, set)) or dataclasses.is_dataclass(default):
        # a fresh copy per instance: a shared mutable default would leak one object's edits into the next
        return dataclasses.field(default_factory=lambda: copy.deepcopy(default), metadata=metadata)
    return dataclasses.field(default=default, metadata=metadata)


def settings_fields(obj: Any) -> tuple[dataclasses.Field, ...]:
    """The fields of a settings dataclass (instance or class) declared with `setting`."""
    return tuple(f for f in dataclasses.fields(obj) if "help" in f.metadata)


def check_choices(obj: Any) -> None:
    """Refuse a field value outside its declared ``choices`` with a one-line error naming the flag."""
    for f in settings_fields(obj):
        allowed = f.metadata["choices"]
        value = getattr(obj, f.name)
        values = value if isinstance(value, (tuple, list)) else (value,)  # a tuple field: each of its items
        bad = [v for v in values if v is not None and v not in allowed] if allowed is not None else []
        if bad:
            flag = f.metadata["flag"] or "--" + f.name.replace("_", "-")
            raise ShiftlensError(f"{flag} must be one of {', '.join(map(str, allowed))}, got {bad[0]!r}")


def _json(value: Any) -> Any:
    if dataclasses.is_dataclass(value):
        return dataclasses.asdict(value)
    return list(value) if isinstance(value, tuple) else value


def identity(obj: Any) -> dict[str, Any]:
    """The JSON-safe fields that fix a run's stored numbers (a resume must match them)."""
    return {f.name: _json(getattr(obj, f.name)) for f in settings_fields(obj) if f.metadata["identity"]}


def summary(obj: Any) -> dict[str, Any]:
    """The JSON-safe fields that only change speed or derived tables (recorded, never checked)."""
    return {f.name: _json(getattr(obj, f.name)) for f in settings_fields(obj) if not f.metadata["identity"]}
