"""`shiftlens attribute`: gradient × input attribution of responses to prompts, into a run directory."""

from __future__ import annotations

import argparse
from pathlib import Path

from shiftlens.attribution.settings import AttributionSettings
from shiftlens.cli.common import add_model_arguments, model_spec
from shiftlens.cli.flags import add_settings, settings_from


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the `attribute` subcommand: the model group, the run's inputs, then `AttributionSettings`' flags."""
    parser = subparsers.add_parser(
        "attribute", help="attribute each response token to the prompt tokens (gradient × input)"
    )
    add_model_arguments(parser)
    parser.add_argument("--data", required=True, type=Path, help="examples: .jsonl, or the paper's .tsv format")
    parser.add_argument("--out", required=True, type=Path, help="run directory (resumed when it exists)")
    parser.add_argument(
        "--shard",
        metavar="I/N",
        help="compute only part I of N (0-based) of the examples, e.g. a job array's task; "
        "rerun without --shard afterwards to merge (under torchrun / accelerate launch, ranks shard by themselves)",
    )
    add_settings(parser, AttributionSettings, title="attribution")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Call `shiftlens.attribution.pipeline.attribute` with the parsed options."""
    from shiftlens.attribution.pipeline import attribute
    from shiftlens.distributed import launched
    from shiftlens.storage import Shard

    shard = None if args.shard is None else Shard.parse(args.shard)
    launch = launched()
    settings = settings_from(args, AttributionSettings)
    out = attribute(model_spec(args), args.data, args.out, settings, shard=shard, launch=launch)
    if shard is not None:
        print(
            f"shard {shard.index}/{shard.count} stored in {out}; once every shard has finished, run the same "
            "command without --shard to merge them: it computes nothing already stored and writes summary.csv"
        )
    elif launch is not None and launch.shard.index != 0:
        print(f"rank {launch.shard.index}/{launch.shard.count}: shard stored in {out}; rank 0 merged the run")
    else:
        print(f"wrote {out} ({out / 'summary.csv'})")
    return 0
