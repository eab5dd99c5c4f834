"""`shiftlens heads`: word-pair explanations of every attention head, read off W_q and W_k."""

from __future__ import annotations

import argparse

from shiftlens.cli.common import add_model_arguments, model_spec
from shiftlens.cli.flags import add_settings, settings_from
from shiftlens.heads.settings import HeadsSettings

NO_DTYPE = ("dtype",)  # the heads read weights as stored, streaming one layer at a time


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the `heads` subcommand: the model group (no --dtype), vocabulary and output, `HeadsSettings`' flags."""
    parser = subparsers.add_parser("heads", help="explain attention heads as (query, key) word pairs")
    add_model_arguments(parser, exclude=NO_DTYPE)
    parser.add_argument("--vocab", required=True, help="word list: word<TAB>frequency lines or one word a line")
    parser.add_argument("--out", required=True, help="run directory (resumed when it exists)")
    add_settings(parser, HeadsSettings, title="heads")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Run `explain_heads` and print where the results are."""
    from shiftlens.heads.pipeline import explain_heads

    settings = settings_from(args, HeadsSettings)
    summary = explain_heads(model_spec(args, exclude=NO_DTYPE), args.vocab, args.out, settings)
    cooc = summary["cooccurrence"] or {}
    print(
        f"{len(summary['computed_layers'])} layers computed, {len(summary['skipped_layers'])} already done; "
        f"{summary['n_pairs']} pairs; {summary['n_words']} words "
        f"({summary['n_words_skipped']} skipped: no token)"
        + (f", {cooc['n_without_vector']} without a co-occurrence vector" if "n_without_vector" in cooc else "")
    )
    print(f"wrote {summary['parquet']} and {summary['tsv']}")
    return 0
