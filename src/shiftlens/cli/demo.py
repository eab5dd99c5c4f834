"""`shiftlens demo`: `compare` on the built-in model organism and its prompts, offline, in a few minutes."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from shiftlens.cli.compare import add_method_arguments, report_summary, settings_from


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the `demo` subcommand."""
    parser = subparsers.add_parser(
        "demo", help="compare the built-in organism-base and organism-tuned on their prompts (offline)"
    )
    add_method_arguments(parser, default_out=Path("out/demo"))
    parser.add_argument("--limit", type=int, help="only the first N of the 513 prompts")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Compare organism-base with organism-tuned on the packaged prompts and word list."""
    from shiftlens import organism
    from shiftlens.compare import compare
    from shiftlens.organism.validation import instruction_verbs

    settings = settings_from(args, limit=args.limit, instruction_verbs=tuple(instruction_verbs()), max_new_tokens=60)
    summary = compare(
        "organism-base",
        "organism-tuned",
        organism.prompts_path(),
        organism.vocab_path(),
        args.out,
        settings,
        log=lambda message: print(message, file=sys.stderr),
    )
    return report_summary(summary)
