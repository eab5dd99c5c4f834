"""The argument parser class of every `shiftlens` command: its help shows each option's default.

Generated flags (`shiftlens.cli.flags`) already end their help with the default; `DefaultsFormatter`
adds it to the hand-written ones (``--seed``, ``--out``, ...) the same way, unless the help says it already.
"""

from __future__ import annotations

import argparse
import logging
import sys
import warnings
from typing import Any

from shiftlens.cli.flags import show
from shiftlens.errors import ShiftlensWarning

UNSHOWN = (None, False, argparse.SUPPRESS)  # no default worth saying: not given means off / not used


class DefaultsFormatter(argparse.HelpFormatter):
    """Help text with ``(default: X)`` after every option whose default is a value."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if not action.option_strings or "(default" in text or any(action.default is d for d in UNSHOWN):
            return text
        if isinstance(action, (argparse._HelpAction, argparse._VersionAction)):
            return text
        return f"{text} (default: {show(action.default).replace('%', '%%')})"


class CommandParser(argparse.ArgumentParser):
    """`argparse.ArgumentParser` with `DefaultsFormatter`; subcommands' parsers are of this class too."""

    def __init__(self, *args: Any, formatter_class: type = DefaultsFormatter, **kwargs: Any) -> None:
        super().__init__(*args, formatter_class=formatter_class, **kwargs)


class StderrHandler(logging.Handler):
    """The library's log lines (``device: cpu (no CUDA)``) on the current ``sys.stderr``, as written."""

    def emit(self, record: logging.LogRecord) -> None:
        print(self.format(record), file=sys.stderr)


def log_to_stderr() -> None:
    """Show the ``shiftlens`` logger's INFO lines on stderr (once per process)."""
    logger = logging.getLogger("shiftlens")
    if not any(isinstance(h, StderrHandler) for h in logger.handlers):
        logger.addHandler(StderrHandler())
        logger.setLevel(logging.INFO)


def warnings_to_stderr() -> None:
    """Show shiftlens's own warnings as one line ``shiftlens: warning: ...`` (others as Python shows them)."""
    default = warnings.showwarning
    if getattr(default, "shiftlens", False):
        return

    def show_warning(message: Any, category: type[Warning], filename: str, lineno: int, *rest: Any) -> None:
        if issubclass(category, ShiftlensWarning):
            print(f"shiftlens: warning: {' '.join(str(message).split())}", file=sys.stderr)
        else:
            default(message, category, filename, lineno, *rest)

    show_warning.shiftlens = True  # type: ignore[attr-defined]
    warnings.showwarning = show_warning
