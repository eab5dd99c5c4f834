"""The `shiftlens` command: a thin shell that parses arguments and calls the library API.

Each subcommand lives in its own module under `shiftlens.cli` exposing ``register(subparsers)``,
which adds its parser and sets ``func`` to a function taking the parsed arguments. A user's mistake
(a `ShiftlensError`, a file that cannot be read, a value that does not parse) ends with one line and exit
code 2, Ctrl-C with one line and 130; ``SHIFTLENS_TRACEBACK=1`` shows the traceback instead.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys

from shiftlens import __version__
from shiftlens.cli.parser import CommandParser, log_to_stderr, warnings_to_stderr
from shiftlens.errors import ShiftlensError

COMMAND_MODULES: tuple[str, ...] = (
    "compare",
    "demo",
    "attribute",
    "heads",
    "ffn",
    "annotate",
    "diff",
    "analyze",
    "reproduce",
    "validate",
)
USER_ERRORS = (ShiftlensError, OSError, ValueError)  # bad inputs: a missing or unreadable file, a bad value
USAGE, INTERRUPTED = 2, 130  # 130 = 128 + SIGINT, what shells report for Ctrl-C


def build_parser() -> argparse.ArgumentParser:
    """The full argument parser with every registered subcommand."""
    parser = CommandParser(prog="shiftlens", description="What instruction tuning changed inside a language model.")
    parser.add_argument("--version", action="version", version=f"shiftlens {__version__}")
    subparsers = parser.add_subparsers(dest="command", required=True)
    for name in COMMAND_MODULES:
        importlib.import_module(f"shiftlens.cli.{name}").register(subparsers)
    return parser


def error_line(exc: BaseException) -> str:
    """The one-line message of a user error: a file error as "PATH: reason", others as their text, joined."""
    if isinstance(exc, OSError) and exc.strerror:
        text = f"{exc.filename}: {exc.strerror}" if exc.filename is not None else exc.strerror
    else:
        text = str(exc) or type(exc).__name__
    return " ".join(text.split())


def interrupted_line(args: argparse.Namespace) -> str:
    """What Ctrl-C leaves: the finished units stay in the output directory, and the same command resumes."""
    out = getattr(args, "out", None)
    if not out:
        return "shiftlens: interrupted"
    return f"shiftlens: interrupted; finished work is kept in {out}, rerun the same command to resume"


def main(argv: list[str] | None = None) -> int:
    """Entry point: run one subcommand; bad inputs end with a one-line error and exit code 2, Ctrl-C with 130."""
    args = build_parser().parse_args(argv)
    log_to_stderr()
    warnings_to_stderr()
    try:
        result = args.func(args)
    except KeyboardInterrupt:
        if os.environ.get("SHIFTLENS_TRACEBACK"):
            raise
        print(interrupted_line(args), file=sys.stderr)
        return INTERRUPTED
    except USER_ERRORS as exc:
        if os.environ.get("SHIFTLENS_TRACEBACK"):
            raise
        print(f"shiftlens: error: {error_line(exc)}", file=sys.stderr)
        return USAGE
    return int(result or 0)


if __name__ == "__main__":
    sys.exit(main())
