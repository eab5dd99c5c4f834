"""`shiftlens demo`: `compare` on the built-in model organism and its prompts, offline, in a few minutes.

The data is a balanced subset of the organism's held-out prompts (`organism.followed_records`: ``PER_CELL``
prompts of each task and instruction position), prompts only: the tuned model generates the replies both
models explain, so the data's reference responses and their ratings are not used.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

from shiftlens.attribution.settings import AttributionSettings
from shiftlens.cli.common import add_force_argument, out_dir
from shiftlens.cli.compare import add_compare_settings, check_endpoint_of, compare_settings, report_summary
from shiftlens.compare.settings import CompareSettings

if TYPE_CHECKING:
    from shiftlens.examples import Example

# the organism's answers are short: "I wear skirt." is 4 tokens, one under the paper's minimum of 5
DEFAULTS = CompareSettings(min_response_tokens=4, attribution=AttributionSettings(max_new_tokens=60))
OUT = Path("out/demo")
MODELS = ("organism-base", "organism-tuned")
PER_CELL = 32  # prompts per task and instruction position (sized so that a fresh demo takes under 3 minutes)


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the `demo` subcommand (the `compare` settings' flags, with the demo's defaults)."""
    parser = subparsers.add_parser(
        "demo", help="compare the built-in organism-base and organism-tuned on their prompts (offline)"
    )
    parser.add_argument("--out", type=out_dir, default=OUT, help=f"comparison directory (default: {OUT})")
    add_force_argument(parser)
    add_compare_settings(parser, DEFAULTS)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Compare organism-base with organism-tuned on the packaged prompts and word list."""
    from shiftlens import organism

    verbs = {} if args.instruction_verbs else {"instruction_verbs": tuple(organism.instruction_verbs())}
    settings = compare_settings(args, DEFAULTS, **verbs)
    data, vocab = demo_examples(), organism.vocab_path()
    print(choices(settings, len(data), vocab, args.out), flush=True)
    check_endpoint_of(settings)
    from shiftlens.compare import compare

    summary = compare(
        *MODELS, data, vocab, args.out, settings, log=lambda message: print(message, file=sys.stderr), force=args.force
    )  # fmt: skip
    return report_summary(summary)


def demo_examples() -> list[Example]:
    """The demo's prompts as examples (spans and group from the packaged file; no response, no rating)."""
    from shiftlens import organism
    from shiftlens.examples import read_examples

    by_id = {e.id: e for e in read_examples(organism.prompts_path())}
    return [replace(by_id[r["id"]], response=None, rating=None) for r in organism.followed_records(PER_CELL)]


def choices(settings: CompareSettings, prompts: int, vocab: Path, out: Path) -> str:
    """What the demo is about to run, in one line: models, data and its limit, generation length, out dir."""
    from shiftlens import organism

    attribution = settings.attribution
    limit = "all" if attribution.limit is None else f"the first {min(attribution.limit, prompts)}"
    return (
        f"demo: {MODELS[0]} vs {MODELS[1]}; data {organism.prompts_path()} ({limit} of {prompts} prompts: "
        f"{PER_CELL} per task and instruction position, followed records), words {vocab}; "
        f"max new tokens {attribution.max_new_tokens}; methods {','.join(settings.methods)}; "
        f"annotator {settings.annotator}; null draws {settings.null_draws}; out {out}"
    )
