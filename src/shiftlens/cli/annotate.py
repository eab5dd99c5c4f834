"""`shiftlens annotate FFN_DIR`: label FFN components with an LLM endpoint or the offline heuristic."""

from __future__ import annotations

import argparse
from pathlib import Path

from shiftlens.cli.common import add_force_argument, out_dir
from shiftlens.cli.flags import add_settings, settings_from
from shiftlens.ffn.annotation_settings import AnnotationSettings
from shiftlens.ffn.annotators import EndpointSettings


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the `annotate` subcommand: `AnnotationSettings`' and `EndpointSettings`' flags."""
    parser = subparsers.add_parser("annotate", help="name the concepts of an FFN run's components")
    parser.add_argument("ffn_dir", help="a finished 'shiftlens ffn' run directory")
    parser.add_argument("--out", type=out_dir, help="annotation directory (default: FFN_DIR/annotations)")
    add_force_argument(parser)
    parser.add_argument("--cache", help="answer cache JSONL (default: OUT/answers.jsonl)")
    add_settings(parser, AnnotationSettings, title="annotation")
    add_settings(parser, EndpointSettings, title="LLM endpoint")
    parser.set_defaults(func=run, temperature=None)  # None = not given: --protocol paper fixes the temperatures


def run(args: argparse.Namespace) -> int:
    """Run `shiftlens.ffn.annotate.annotate` with the parsed options and print what it labelled."""
    import json

    from shiftlens.errors import ShiftlensError
    from shiftlens.ffn import annotate
    from shiftlens.ffn.endpoint import Sampling

    out = Path(args.out) if args.out else annotate.default_out(args.ffn_dir)
    if args.protocol == "paper" and args.temperature is not None:
        raise ShiftlensError(
            "--protocol paper fixes the temperatures (concept 1.0, tasks and level 0); drop --temperature"
        )
    if args.temperature is None:
        args.temperature = Sampling.temperature
    settings = settings_from(args, AnnotationSettings)
    if settings.annotator == "lexical":
        print("annotator: lexical (HEURISTIC: WordNet lexicographer files and word lists, not an LLM)")
    annotate.annotate(
        args.ffn_dir, settings, settings_from(args, EndpointSettings), out=out, cache=args.cache, force=args.force
    )
    summary = json.loads((out / "summary.json").read_text(encoding="utf-8"))
    statuses = summary["statuses"]
    print(
        f"{summary['n_labels']} labels in {out / 'labels.parquet'}"
        + (" (HEURISTIC lexical annotator)" if summary["heuristic"] else "")
        + f"; unparseable answers: concept {statuses['concept']['unparseable']}, "
        f"tasks {statuses['tasks']['unparseable']}, level {statuses['level']['unparseable']}"
        + (f"; {summary['requests']} requests, {summary['cache_hits']} cached" if "requests" in summary else "")
    )
    return 0
