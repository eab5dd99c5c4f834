"""`shiftlens heads`: word-pair explanations of every attention head, read off W_q and W_k."""

from __future__ import annotations

import argparse

from shiftlens.cli.common import add_layers_argument, add_model_arguments, add_shard_argument
from shiftlens.options import parse_layers


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the `heads` subcommand."""
    parser = subparsers.add_parser("heads", help="explain attention heads as (query, key) word pairs")
    add_model_arguments(parser, dtype=False)
    parser.add_argument("--vocab", required=True, help="word list: word<TAB>frequency lines or one word a line")
    parser.add_argument("--out", required=True, help="run directory (resumed when it exists)")
    parser.add_argument("--top-k", type=int, default=100, help="candidate words per dimension and side")
    parser.add_argument(
        "--cooccurrence",
        default="ppmi:wordnet",
        help="glove:PATH, st:NAME_OR_PATH, ppmi:CORPUS (ppmi:wordnet = WordNet glosses) or none",
    )
    add_layers_argument(parser)
    add_shard_argument(parser, "layers")
    parser.add_argument("--min-frequency", type=float, help="drop words of lower frequency")
    parser.add_argument("--alphabetic", action="store_true", help="keep only alphabetic words")
    parser.add_argument("--top-n", type=int, help="keep only the N most frequent words")
    parser.add_argument("--reference-words", type=int, default=3000, help="most frequent words for thresholds")
    parser.add_argument("--z", type=float, default=1.96, help="threshold = mean + z·std of reference similarity")
    parser.add_argument("--max-pairs", type=int, help="keep at most N pairs per dimension (default: all)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Run `explain_heads` and print where the results are."""
    from shiftlens.cli.common import model_spec_from, report_partial, run_placement
    from shiftlens.heads.pipeline import explain_heads
    from shiftlens.heads.settings import HeadsSettings
    from shiftlens.storage import read_manifest

    settings = HeadsSettings(
        top_k=args.top_k,
        cooccurrence=args.cooccurrence,
        layers=parse_layers(args.layers),
        min_frequency=args.min_frequency,
        alphabetic=args.alphabetic,
        top_n=args.top_n,
        reference_words=args.reference_words,
        z=args.z,
        max_pairs=args.max_pairs,
    )
    placement = run_placement(args)
    out = explain_heads(model_spec_from(args), args.vocab, args.out, settings, **placement)
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
