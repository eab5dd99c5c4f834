"""`shiftlens ffn`: PCA of each layer's FFN down-projection, read through the vocabulary."""

from __future__ import annotations

import argparse

from shiftlens.cli.common import VOCAB_HELP, add_run_command, model_spec, report_partial, run_placement
from shiftlens.cli.flags import settings_from
from shiftlens.ffn.settings import FfnSettings


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the `ffn` subcommand: the model group, vocabulary and output, then `FfnSettings`' flags."""
    help = "principal components of FFN down-projections as word lists"
    parser = add_run_command(subparsers, "ffn", help, FfnSettings, ("--vocab", VOCAB_HELP), "layers", title="ffn")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Run `explain_ffn` and print R and where the results are (the model's name checked first)."""
    spec = model_spec(args)
    from shiftlens.ffn.pipeline import explain_ffn
    from shiftlens.storage import read_manifest

    placement = run_placement(args)
    settings = settings_from(args, FfnSettings)
    out = explain_ffn(spec, args.vocab, args.out, settings, force=args.force, **placement)
    if report_partial(out, **placement):
        return 0
    manifest = read_manifest(out)
    print(
        f"R = {manifest['params']['components']} components per layer of hidden size {manifest['hidden']} "
        f"({manifest['components_rule']}); wrote {out / 'concepts.parquet'} and {out / 'concepts.tsv'}"
    )
    return 0
