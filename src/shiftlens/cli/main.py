"""The `shiftlens` command: a thin shell that parses arguments and calls the library API.

Each subcommand lives in its own module under `shiftlens.cli` exposing ``register(subparsers)``,
which adds its parser and sets ``func`` to a function taking the parsed arguments.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from shiftlens.errors import ShiftlensError

COMMAND_MODULES: tuple[str, ...] = (
    "compare",
    "demo",
    "attribute",
    "heads",
    "ffn",
    "annotate",
    "analyze",
    "reproduce",
)


def build_parser() -> argparse.ArgumentParser:
    """The full argument parser with every registered subcommand."""
    parser = argparse.ArgumentParser(
        prog="shiftlens", description="What instruction tuning changed inside a language model."
    )
    subparsers = parser.add_subparsers(dest="command", required=True)
    for name in COMMAND_MODULES:
        importlib.import_module(f"shiftlens.cli.{name}").register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point: run one subcommand; bad inputs end with a one-line error and exit code 2."""
    args = build_parser().parse_args(argv)
    try:
        result = args.func(args)
    except ShiftlensError as exc:
        print(f"shiftlens: error: {exc}", file=sys.stderr)
        return 2
    return int(result or 0)


if __name__ == "__main__":
    sys.exit(main())
