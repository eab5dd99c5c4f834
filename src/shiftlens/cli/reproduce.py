"""`shiftlens reproduce PAPER_DATA_DIR`: the instruction analysis on the authors' released results.

The default protocol is "paper" (the authors' analysis choices); ``--protocol sound`` gives ours beside it.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from shiftlens.cli.analyze_instructions import add_output_arguments, emit


def run(args: argparse.Namespace) -> int:
    """Load LLaMA-7B (base) and Vicuna-7B (tuned) released results, analyse under --protocol, print and write."""
    from shiftlens.analysis.instructions import analyze_records
    from shiftlens.paper_data import load_paper_runs

    start = time.perf_counter()
    runs = load_paper_runs(args.paper_data, protocol=args.protocol)
    result = analyze_records(
        runs.base,
        runs.tuned,
        runs.ratings,
        min_response_tokens=args.min_response_tokens,
        protocol=args.protocol,
        seed=args.seed,
    )
    seconds = round(time.perf_counter() - start, 2)
    result = result.extended(paper_data={"path": str(args.paper_data), "dropped": runs.dropped, "seconds": seconds})
    emit(result, args)
    print(f"loaded and analysed {args.paper_data} in {seconds:.1f} s")
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add `reproduce`."""
    parser = subparsers.add_parser(
        "reproduce", help="run the instruction analysis on the paper's released attribution results"
    )
    parser.add_argument("paper_data", type=Path, help="directory laid out like the released data (datasets/, results/)")
    add_output_arguments(parser, protocol="paper")
    parser.set_defaults(func=run)
