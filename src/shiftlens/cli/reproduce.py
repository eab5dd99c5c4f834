"""`shiftlens reproduce PAPER_DATA_DIR`: the instruction analysis on the authors' released results."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from shiftlens.cli.analyze_instructions import add_output_arguments, emit


def run(args: argparse.Namespace) -> int:
    """Load LLaMA-7B (base) and Vicuna-7B (tuned) released results, analyse, print and write."""
    from shiftlens.analysis.instructions import analyze_instructions
    from shiftlens.paper_data import load_paper_runs

    start = time.perf_counter()
    runs = load_paper_runs(args.paper_data)
    result = analyze_instructions(runs.base, runs.tuned, runs.ratings, min_response_tokens=args.min_response_tokens)
    seconds = round(time.perf_counter() - start, 2)
    result["paper_data"] = {"path": str(args.paper_data), "dropped": runs.dropped, "seconds": seconds}
    emit(result, args)
    print(f"loaded and analysed {args.paper_data} in {seconds:.1f} s")
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add `reproduce`."""
    parser = subparsers.add_parser(
        "reproduce", help="run the instruction analysis on the paper's released attribution results"
    )
    parser.add_argument("paper_data", type=Path, help="directory laid out like the released data (datasets/, results/)")
    parser.add_argument(
        "--min-response-tokens", type=int, default=5, help="leave out responses shorter than this (default 5)"
    )
    add_output_arguments(parser)
    parser.set_defaults(func=run)
