"""`shiftlens ffn`: PCA of each layer's FFN down-projection, read through the vocabulary."""

from __future__ import annotations

import argparse

from shiftlens.cli.common import (
    add_layers_argument,
    add_model_arguments,
    add_shard_argument,
    model_spec_from,
    report_partial,
    run_placement,
)
from shiftlens.options import parse_layers


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the `ffn` subcommand."""
    parser = subparsers.add_parser("ffn", help="principal components of FFN down-projections as word lists")
    add_model_arguments(parser)
    parser.add_argument("--vocab", required=True, help="word list: word<TAB>frequency lines or one word a line")
    parser.add_argument("--vocab-top", type=int, help="keep only the N most frequent words")
    parser.add_argument("--out", required=True, help="run directory (resumed when it exists)")
    parser.add_argument(
        "--components",
        type=int,
        help="principal components R kept per layer (default: the paper's 300/4096 of the hidden size, at least 1)",
    )
    parser.add_argument("--top-k", type=int, default=50, help="words stored per component")
    add_layers_argument(parser)
    add_shard_argument(parser, "layers")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Load the model and run `explain_ffn`."""
    from shiftlens.ffn.pipeline import explain_ffn
    from shiftlens.ffn.settings import FfnSettings
    from shiftlens.storage import read_manifest

    settings = FfnSettings(args.components, args.top_k, parse_layers(args.layers), args.vocab_top)
    placement = run_placement(args)
    out = explain_ffn(model_spec_from(args), args.vocab, args.out, settings, **placement)
    if report_partial(out, **placement):
        return 0
    manifest = read_manifest(out)
    print(
        f"R = {manifest['params']['components']} components per layer of hidden size {manifest['hidden']} "
        f"({manifest['components_rule']}); wrote {out / 'concepts.parquet'} and {out / 'concepts.tsv'}"
    )
    return 0
