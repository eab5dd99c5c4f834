"""`shiftlens analyze instructions BASE_RUN TUNED_RUN`: Tables 1–2, nulls and the position profile of two runs."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from shiftlens.cli.analyze import add_output_options, write_result
from shiftlens.evidence import DEFAULT_PROTOCOL, MIN_RESPONSE_TOKENS, PROTOCOLS

if TYPE_CHECKING:
    from shiftlens.analysis.instructions import InstructionsResult


def add_output_arguments(parser: argparse.ArgumentParser, protocol: str = DEFAULT_PROTOCOL) -> None:
    """The --protocol/--seed/--min-response-tokens/--out/--json options shared with `shiftlens reproduce`."""
    parser.add_argument(
        "--protocol",
        choices=sorted(PROTOCOLS),
        default=protocol,
        help=f"analysis choices: {'; '.join(f'{k}: {v}' for k, v in PROTOCOLS.items())} (default {protocol})",
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of the control spans and permutations (default 0)")
    parser.add_argument(
        "--min-response-tokens",
        type=int,
        default=MIN_RESPONSE_TOKENS,
        help=f"leave out responses shorter than this (default {MIN_RESPONSE_TOKENS})",
    )
    add_output_options(parser, "instructions", "one CSV per table and the figures (PNG + SVG) under DIR/figures")


def emit(result: InstructionsResult, args: argparse.Namespace) -> None:
    """Print the tables and write what --out/--json ask for."""
    from shiftlens.analysis.instructions_output import print_tables

    print_tables(result)
    write_result(result, args)


def run(args: argparse.Namespace) -> int:
    """Read both runs (and ratings), analyse, print and write; examples that failed in a run are listed."""
    from shiftlens.analysis.instructions import analyze_instructions
    from shiftlens.examples import read_ratings

    ratings = read_ratings(args.ratings, model=args.ratings_model) if args.ratings else None
    result = analyze_instructions(
        args.base_run,
        args.tuned_run,
        ratings,
        min_response_tokens=args.min_response_tokens,
        protocol=args.protocol,
        seed=args.seed,
    )
    emit(result, args)
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add `analyze instructions`."""
    parser = subparsers.add_parser(
        "instructions", help="instruction scores: followed vs unfollowed, base vs tuned, position profile"
    )
    parser.add_argument("base_run", type=Path, help="attribution run directory of the base model")
    parser.add_argument("tuned_run", type=Path, help="attribution run directory of the tuned model")
    parser.add_argument("--ratings", type=Path, help="ratings of the tuned responses (AnnotatedDataset.tsv format)")
    parser.add_argument("--ratings-model", help="keep only this Model column of the ratings file (e.g. vicuna_7B)")
    add_output_arguments(parser)
    parser.set_defaults(func=run)
