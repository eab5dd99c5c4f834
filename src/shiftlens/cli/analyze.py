"""`shiftlens analyze {instructions,heads,ffn}`: each analysis registers itself from its own module.

All three give ``--out DIR`` and ``--json PATH`` one meaning (`add_output_options`, `write_result`):
``--out`` is where the result's ``save`` writes everything (its JSON, tables, figures); ``--json`` writes
the result's JSON alone (the same content as the JSON under ``--out``) to PATH.
"""

from __future__ import annotations

import argparse
import importlib
from pathlib import Path
from typing import TYPE_CHECKING

from shiftlens.analysis.result import JSON_FILES

if TYPE_CHECKING:
    from shiftlens.analysis.result import AnalysisResult

ANALYSIS_MODULES: tuple[str, ...] = ("analyze_heads", "analyze_ffn", "analyze_instructions")
DEVICE_HELP = "cpu, cuda[:N], or auto: cuda when present, else cpu"


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add `analyze` and, under it, every analysis module's subcommand."""
    parser = subparsers.add_parser("analyze", help="compare a base and a tuned run")
    analyses = parser.add_subparsers(dest="analysis", required=True)
    for name in ANALYSIS_MODULES:
        importlib.import_module(f"shiftlens.cli.{name}").register(analyses)


def add_output_options(parser: argparse.ArgumentParser, analysis: str, files: str) -> None:
    """``--out DIR`` (everything the analysis writes: its JSON and ``files``) and ``--json PATH`` (the JSON only)."""
    name = JSON_FILES[analysis]
    parser.add_argument(
        "--out", type=Path, metavar="DIR", help=f"write everything to DIR: {name} (the result as JSON), {files}"
    )
    parser.add_argument(
        "--json", type=Path, metavar="PATH", help=f"write only the result as JSON (the content of DIR/{name}) to PATH"
    )


def write_result(result: AnalysisResult, args: argparse.Namespace) -> None:
    """Write what ``--out`` and ``--json`` ask for (either, both or neither) and say where."""
    if args.out:
        paths = result.save(args.out)
        print(f"wrote {len(paths)} files to {args.out}: " + ", ".join(p.name for p in paths))
    if args.json:
        print(f"wrote {result.write_json(args.json)}")
