"""The base of every error shiftlens raises for a bad input or setting (the CLI prints these as one line),
and of its warnings: something the user asked for was ignored or only partly used."""

import warnings


class ShiftlensError(Exception):
    """An error whose message tells the user what was wrong and what to do; no traceback needed."""


class ShiftlensWarning(UserWarning):
    """A one-line warning that says what was ignored or only partly used, and why."""


def warn(message: str) -> None:
    """Warn with a `ShiftlensWarning` (shown once per message; tests catch it with ``pytest.warns``)."""
    warnings.warn(message, ShiftlensWarning, stacklevel=3)
