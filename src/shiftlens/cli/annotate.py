"""`shiftlens annotate FFN_DIR`: label FFN components with an LLM endpoint or the offline heuristic.

The flags are spelled as in `shiftlens compare`: ``--annotator`` and ``--protocol``, the annotation's
``--annotation-*`` and the LLM endpoint's ``--annotator-*``; the unprefixed old spellings still work, with a warning.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from shiftlens.cli.common import add_force_argument, out_dir
from shiftlens.cli.flags import add_settings, renamed, settings_from
from shiftlens.ffn.annotation_settings import AnnotationSettings
from shiftlens.ffn.annotators import EndpointSettings, check_endpoint

TOP = ("annotator", "protocol")  # spelled as in `compare`; the annotation's other flags are --annotation-*


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the `annotate` subcommand: `AnnotationSettings`' and `EndpointSettings`' flags."""
    parser = subparsers.add_parser("annotate", help="name the concepts of an FFN run's components")
    parser.add_argument("ffn_dir", help="a finished 'shiftlens ffn' run directory")
    parser.add_argument("--out", type=out_dir, help="annotation directory (default: FFN_DIR/annotations)")
    add_force_argument(parser)
    parser.add_argument("--cache", help="answer cache JSONL (default: OUT/answers.jsonl)")
    add_settings(parser, AnnotationSettings, title="annotation", only=TOP)
    add_settings(
        parser, AnnotationSettings, "annotation", exclude=TOP, deprecated=renamed(AnnotationSettings, "", exclude=TOP)
    )
    add_settings(parser, EndpointSettings, "annotator", title="LLM annotator", deprecated=renamed(EndpointSettings, ""))
    parser.set_defaults(func=run, annotator_temperature=None)  # None = not given: --protocol paper fixes them


def annotation_settings(args: argparse.Namespace) -> AnnotationSettings:
    """The `AnnotationSettings` of the parsed flags (``--annotator``, ``--protocol``, ``--annotation-*``)."""
    top = settings_from(args, AnnotationSettings, only=TOP)
    return settings_from(args, AnnotationSettings, "annotation", exclude=TOP, defaults=top)


def run(args: argparse.Namespace) -> int:
    """Run `shiftlens.ffn.annotate.annotate` with the parsed options and print what it labelled (an LLM
    endpoint is probed first, before torch loads)."""
    import json

    from shiftlens.errors import ShiftlensError
    from shiftlens.ffn.endpoint import Sampling

    if args.protocol == "paper" and args.annotator_temperature is not None:
        raise ShiftlensError(
            "--protocol paper fixes the temperatures (concept 1.0, tasks and level 0); drop --annotator-temperature"
        )
    if args.annotator_temperature is None:
        args.annotator_temperature = Sampling.temperature
    settings = annotation_settings(args)
    endpoint = settings_from(args, EndpointSettings, "annotator")
    check_endpoint(settings.annotator, endpoint)
    from shiftlens.ffn import annotate

    args.out = out = Path(args.out) if args.out else annotate.default_out(args.ffn_dir)  # named on Ctrl-C
    if settings.annotator == "lexical":
        print("annotator: lexical (HEURISTIC: WordNet lexicographer files and word lists, not an LLM)")
    annotate.annotate(
        args.ffn_dir,
        settings,
        endpoint,
        out=out,
        cache=args.cache,
        force=args.force,
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
