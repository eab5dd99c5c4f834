"""`shiftlens attribute`: gradient × input attribution of responses to prompts, into a run directory."""

from __future__ import annotations

import argparse

from shiftlens.attribution.settings import AttributionSettings
from shiftlens.cli.common import add_run_command, model_spec, report_partial, run_placement
from shiftlens.cli.flags import settings_from


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the `attribute` subcommand: the model group, the run's inputs, then `AttributionSettings`' flags."""
    help = "attribute each response token to the prompt tokens (gradient × input)"
    inputs = ("--data", "examples: .jsonl, or the paper's .tsv format")
    parser = add_run_command(
        subparsers, "attribute", help, AttributionSettings, inputs, "examples", title="attribution"
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Call `shiftlens.attribution.pipeline.attribute` with the parsed options (the model's name checked first)."""
    spec = model_spec(args)
    from shiftlens.attribution.pipeline import attribute

    placement = run_placement(args)
    settings = settings_from(args, AttributionSettings)
    out = attribute(spec, args.data, args.out, settings, force=args.force, **placement)
    if not report_partial(out, **placement):
        print(f"wrote {out} ({out / 'summary.csv'})")
    return 0
