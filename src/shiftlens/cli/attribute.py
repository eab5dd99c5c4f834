"""`shiftlens attribute`: gradient × input attribution of responses to prompts, into a run directory."""

from __future__ import annotations

import argparse
from pathlib import Path

from shiftlens.attribution.plan import DEFAULT_MEMORY_BUDGET, MODES
from shiftlens.cli.common import add_model_arguments, add_shard_argument


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the `attribute` subcommand."""
    parser = subparsers.add_parser(
        "attribute", help="attribute each response token to the prompt tokens (gradient × input)"
    )
    add_model_arguments(parser)
    parser.add_argument("--data", required=True, type=Path, help="examples: .jsonl, or the paper's .tsv format")
    parser.add_argument("--out", required=True, type=Path, help="run directory (resumed when it exists)")
    parser.add_argument("--objective", default="prob", choices=("prob", "logprob", "logit"))
    parser.add_argument(
        "--mode",
        default="auto",
        choices=MODES,
        help="auto (default): forward mode (one JVP per prompt token) or batched reverse mode (one vmapped "
        "backward per chunk of response tokens), whichever a cost model finds cheaper; same numbers either way",
    )
    parser.add_argument(
        "--memory-budget",
        type=float,
        default=DEFAULT_MEMORY_BUDGET,
        metavar="X",
        help="size chunks so the estimated peak memory stays within X × (weights + one forward's activations) "
        f"(default {DEFAULT_MEMORY_BUDGET})",
    )
    parser.add_argument(
        "--chat-template", default="auto", help="auto (the tokenizer's, if any), none, or a Jinja template file"
    )
    parser.add_argument("--max-new-tokens", type=int, default=300, help="generation length limit (default 300)")
    parser.add_argument("--generate", action="store_true", help="generate responses even where the data has them")
    parser.add_argument(
        "--responses-from",
        type=Path,
        help="explain the responses stored in this attribution run (e.g. the tuned model's)",
    )
    parser.add_argument("--limit", type=int, help="only the first N examples")
    parser.add_argument("--ratings", type=Path, help="ratings to join by id (AnnotatedDataset.tsv format)")
    add_shard_argument(parser, "examples")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Call `shiftlens.attribution.pipeline.attribute` with the parsed options."""
    from shiftlens.attribution.pipeline import attribute
    from shiftlens.attribution.settings import AttributionSettings
    from shiftlens.cli.common import model_spec_from, report_partial, run_placement

    settings = AttributionSettings(
        objective=args.objective,
        mode=args.mode,
        chat_template=args.chat_template,
        max_new_tokens=args.max_new_tokens,
        responses_from=args.responses_from and str(args.responses_from),
        generate_responses=args.generate,
        ratings=args.ratings and str(args.ratings),
        limit=args.limit,
        memory_budget=args.memory_budget,
    )
    placement = run_placement(args)
    out = attribute(model_spec_from(args), args.data, args.out, settings, **placement)
    if not report_partial(out, **placement):
        print(f"wrote {out} ({out / 'summary.csv'})")
    return 0
