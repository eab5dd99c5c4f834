"""`shiftlens analyze {instructions,heads,ffn}`: each analysis registers itself from its own module."""

from __future__ import annotations

import argparse
import importlib

ANALYSIS_MODULES: tuple[str, ...] = ("analyze_heads", "analyze_ffn", "analyze_instructions")


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add `analyze` and, under it, every analysis module's subcommand."""
    parser = subparsers.add_parser("analyze", help="compare a base and a tuned run")
    analyses = parser.add_subparsers(dest="analysis", required=True)
    for name in ANALYSIS_MODULES:
        importlib.import_module(f"shiftlens.cli.{name}").register(analyses)
