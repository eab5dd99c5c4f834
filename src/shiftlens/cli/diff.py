"""`shiftlens diff`: where tuning acted — the weight-delta map and, on data, per-token divergence and logit lens."""

from __future__ import annotations

import argparse
from dataclasses import replace
from pathlib import Path

from shiftlens.cli.common import MODEL_HELP, add_force_argument, out_dir
from shiftlens.cli.flags import add_settings, settings_from
from shiftlens.errors import ShiftlensError
from shiftlens.models.spec import ModelSpec, check_name

LOADING = ("adapter",)  # every other ModelSpec option applies to both models; the adapter is --tuned-adapter's


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the `diff` subcommand."""
    parser = subparsers.add_parser(
        "diff", help="where tuning acted: weight deltas per layer, module and head; per-token divergence; logit lens"
    )
    parser.add_argument("base", help=f"the pre-trained model: {MODEL_HELP}")
    parser.add_argument("tuned", help="the tuned model (the base's name again with --tuned-adapter)")
    parser.add_argument("--tuned-adapter", help="a LoRA adapter of the base: its deltas are read as B·A, not merged")
    parser.add_argument("--data", type=Path, help="examples (.jsonl or the paper's .tsv) for the per-token part")
    parser.add_argument("--out", required=True, type=out_dir, help="output directory")
    parser.add_argument("--weights-only", action="store_true", help="only the weight-delta map (no --data needed)")
    parser.add_argument("--limit", type=int, metavar="N", help="only the first N examples (default: all)")
    parser.add_argument(
        "--max-new-tokens",
        type=int,
        default=200,
        metavar="N",
        help="length of the tuned model's replies to prompts without a response",
    )
    parser.add_argument(
        "--no-null",
        action="store_true",
        help="skip the nulls: the weight map's (noise as large as each ΔW) and the per-token KL of base + such noise",
    )
    parser.add_argument(
        "--allow-different-shapes",
        action="store_true",
        help="leave tensors whose shapes differ out of the weight map (with a warning) instead of refusing the pair",
    )
    add_force_argument(parser)
    add_settings(parser, ModelSpec, exclude=LOADING, title="loading (both models)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """The weight map into OUT/weights.parquet, then (with --data) the per-token run into OUT/tokens."""
    if not args.weights_only and args.data is None:
        raise ShiftlensError("--data is needed for the per-token divergence (or give --weights-only)")
    for name in (args.base, args.tuned):
        check_name(name, getattr(args, "gguf_file", None), None)
    if args.tuned_adapter is not None and args.tuned != args.base:
        raise ShiftlensError(f"--tuned-adapter adapts the base: give the base's name twice, not {args.tuned!r}")
    from shiftlens.diff.run import diff_weights
    from shiftlens.examples import load_examples

    examples = None if args.weights_only else load_examples(args.data, None, args.limit)  # checked before any work
    base = settings_from(args, ModelSpec, exclude=LOADING, name=args.base)
    tuned = settings_from(args, ModelSpec, exclude=LOADING, name=args.tuned)
    adapter = args.tuned_adapter
    null_seed = None if args.no_null else 0
    other = None if adapter else tuned
    shapes = args.allow_different_shapes
    path = diff_weights(base, other, args.out, adapter=adapter, null_seed=null_seed, allow_different_shapes=shapes)
    print(f"wrote {path}")
    if examples is not None:
        from shiftlens.diff.tokens import diff_tokens

        tuned_model = (replace(tuned, adapter=adapter) if adapter else tuned).load()
        out = diff_tokens(
            base.load(),
            tuned_model,
            examples,
            Path(args.out) / "tokens",
            max_new_tokens=args.max_new_tokens,
            force=args.force,
            null_seed=null_seed,
        )
        print(f"wrote {out} (tokens.parquet, summary.json)")
    return 0
