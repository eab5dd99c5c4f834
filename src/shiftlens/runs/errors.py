"""The errors every run shares: some units failed (exit code 2), a directory of another kind or format."""

from __future__ import annotations

from pathlib import Path

from shiftlens.errors import ShiftlensError


class RunFailures(ShiftlensError, RuntimeError):
    """Some units failed; the others are stored. ``path`` is the run, ``failed`` maps unit key to reason."""

    def __init__(self, path: Path, failed: dict[str, str], total: int, noun: str, where: str):
        self.path, self.failed = path, failed
        shown = "; ".join(f"{k}: {v}" for k, v in list(failed.items())[:3])
        more = f" (and {len(failed) - 3} more)" if len(failed) > 3 else ""
        super().__init__(
            f"{len(failed)} of {total} {noun}s failed, the others are stored in {path} "
            f"(failures {where}): {shown}{more}"
        )


class WrongRunKind(ShiftlensError, ValueError):
    """A run directory of another kind than the one asked for."""

    def __init__(self, path: str | Path, kind: object, wanted: str):
        self.path, self.kind, self.wanted = Path(path), kind, wanted
        super().__init__(f"{path} is a {kind} run, not a {wanted} run")


class OldRunFormat(ShiftlensError, ValueError):
    """A run directory written by an older shiftlens that this one cannot resume."""
