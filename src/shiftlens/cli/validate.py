"""`shiftlens validate`: every method scored against a planted pair's ground truth, beside its negative controls."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from shiftlens.errors import ShiftlensError
from shiftlens.validation.defaults import DRAWS


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the `validate` subcommand."""
    parser = subparsers.add_parser(
        "validate",
        help="score each method against a planted pair's ground_truth.json: planted, recovered, p, false positives",
    )
    parser.add_argument(
        "dir",
        nargs="?",
        type=Path,
        help="a planted pair's directory holding ground_truth.json (default: the shipped organism's)",
    )
    parser.add_argument("--json", type=Path, metavar="PATH", help="write every figure, per seed and over seeds, here")
    parser.add_argument("--limit", type=int, metavar="N", help="only the first N prompts (default: all)")
    parser.add_argument("--seeds", nargs="+", metavar="SEED", help="tuning seeds to validate (default: all)")
    parser.add_argument("--draws", type=int, default=DRAWS, metavar="K", help="noise draws of the negative control")
    parser.add_argument("--seed", type=int, default=0, help="seed of the noise draws and the permutation tests")
    parser.add_argument("--device", default="cpu", help="cpu, cuda[:N] or auto")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Run `shiftlens.validation.run.validate`, print the per-method report, write the JSON if asked."""
    if args.limit is not None and args.limit < 1:
        raise ShiftlensError(f"--limit must be at least 1, got {args.limit}")
    from shiftlens import organism
    from shiftlens.validation.truth import read_ground_truth

    read_ground_truth(args.dir or organism.data_dir())  # a directory without the file fails here, before torch loads
    from shiftlens.validation.report import report_text
    from shiftlens.validation.run import validate

    result = validate(
        args.dir, limit=args.limit, seeds=args.seeds, draws=args.draws, seed=args.seed, device=args.device
    )
    print(report_text(result))
    if args.json is not None:
        args.json.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
        print(f"wrote {args.json}")
    return 0
