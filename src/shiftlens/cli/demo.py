"""`shiftlens demo`: `compare` on the built-in model organism and its prompts, offline, in a few minutes."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from shiftlens.attribution.settings import AttributionSettings
from shiftlens.cli.common import add_force_argument, out_dir
from shiftlens.cli.compare import add_compare_settings, check_endpoint_of, compare_settings, report_summary
from shiftlens.compare.settings import CompareSettings

DEFAULTS = CompareSettings(attribution=AttributionSettings(max_new_tokens=60))  # the organism's answers are short
OUT = Path("out/demo")
MODELS = ("organism-base", "organism-tuned")


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
    from shiftlens.organism.validation import instruction_verbs

    verbs = {} if args.instruction_verbs else {"instruction_verbs": tuple(instruction_verbs())}  # the organism's
    settings = compare_settings(args, DEFAULTS, **verbs)
    data, vocab = organism.prompts_path(), organism.vocab_path()
    print(choices(settings, data, vocab, args.out), flush=True)
    check_endpoint_of(settings)
    from shiftlens.compare import compare

    summary = compare(
        *MODELS, data, vocab, args.out, settings, log=lambda message: print(message, file=sys.stderr), force=args.force
    )  # fmt: skip
    return report_summary(summary)


def choices(settings: CompareSettings, data: Path, vocab: Path, out: Path) -> str:
    """What the demo is about to run, in one line: models, data and its limit, generation length, out dir."""
    prompts = sum(1 for line in data.read_text(encoding="utf-8").splitlines() if line.strip())
    attribution = settings.attribution
    limit = "all" if attribution.limit is None else f"the first {min(attribution.limit, prompts)}"
    return (
        f"demo: {MODELS[0]} vs {MODELS[1]}; data {data} ({limit} of {prompts} prompts), words {vocab}; "
        f"max new tokens {attribution.max_new_tokens}; methods {','.join(settings.methods)}; "
        f"annotator {settings.annotator}; null draws {settings.null_draws}; out {out}"
    )
