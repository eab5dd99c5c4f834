"""`shiftlens analyze heads BASE_DIR TUNED_DIR`: Table 3, instruction verbs vs general verbs in heads."""

from __future__ import annotations

import argparse
from pathlib import Path


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the `analyze heads` subcommand."""
    parser = subparsers.add_parser("heads", help="instruction verbs vs general verbs in base and tuned heads")
    parser.add_argument("base_dir", help="`shiftlens heads` output of the base model")
    parser.add_argument("tuned_dir", help="`shiftlens heads` output of the tuned model")
    parser.add_argument("--json", help="write the result as JSON to this path")
    parser.add_argument("--out", help="directory for table3.csv, heads_analysis.json and the overlap plot")
    parser.add_argument("--instruction-verbs", help="word list replacing the default instruction verbs")
    parser.add_argument("--general-verbs", help="word list replacing the packaged general verbs")
    parser.add_argument("--groups", type=int, default=4, help="number of layer groups (default: quarters)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Run `analyze_heads`, print Table 3 and write the asked files."""
    from shiftlens.heads.analysis import (
        INSTRUCTION_VERBS,
        TABLE_COLUMNS,
        analyze_heads,
        table_rows,
        word_list,
        write_report,
    )
    from shiftlens.storage import atomic_write_json
    from shiftlens.tables import print_table

    instruction = word_list(args.instruction_verbs) if args.instruction_verbs else INSTRUCTION_VERBS
    general = word_list(args.general_verbs) if args.general_verbs else None
    result = analyze_heads(args.base_dir, args.tuned_dir, instruction, general, args.groups)
    print_table("Heads: fraction of heads where tuned has more pairs with the word", TABLE_COLUMNS, table_rows(result))
    if args.json:
        atomic_write_json(Path(args.json), result)
    if args.out:
        for path in write_report(result, args.out):
            print(f"wrote {path}")
    return 0
