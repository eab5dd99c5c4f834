"""`shiftlens heads`: word-pair explanations of every attention head, read off W_q and W_k."""

from __future__ import annotations

import argparse

from shiftlens.cli.common import VOCAB_HELP, add_run_command, model_spec, report_partial, run_placement
from shiftlens.cli.flags import settings_from
from shiftlens.heads.settings import HeadsSettings

NO_DTYPE = ("dtype",)  # the heads read weights as stored, streaming one layer at a time


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the `heads` subcommand: the model group (no --dtype), vocabulary and output, `HeadsSettings`' flags."""
    help = "explain attention heads as (query, key) word pairs"
    inputs = ("--vocab", VOCAB_HELP)
    parser = add_run_command(
        subparsers, "heads", help, HeadsSettings, inputs, "layers", title="heads", exclude=NO_DTYPE
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Run `explain_heads` and print where the results are (the model's name checked first)."""
    spec = model_spec(args, exclude=NO_DTYPE)
    from shiftlens.heads.pipeline import explain_heads
    from shiftlens.storage import read_manifest

    placement = run_placement(args)
    settings = settings_from(args, HeadsSettings)
    out = explain_heads(spec, args.vocab, args.out, settings, force=args.force, **placement)
    if report_partial(out, **placement):
        return 0
    manifest = read_manifest(out)
    results, cooc = manifest["results"], manifest.get("cooccurrence") or {}
    print(
        f"{len(results['layers_done'])} layers stored; {results['n_pairs']} pairs; {results['n_words']} words "
        f"({results['n_words_skipped']} skipped: no token)"
        + (f", {cooc['n_without_vector']} without a co-occurrence vector" if "n_without_vector" in cooc else "")
    )
    print(f"wrote {out / 'heads.parquet'} and {out / 'heads.tsv'}")
    return 0
