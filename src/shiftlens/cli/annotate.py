"""`shiftlens annotate FFN_DIR`: label FFN components with an LLM endpoint or the offline heuristic."""

from __future__ import annotations

import argparse
from pathlib import Path

from shiftlens.evidence import DEFAULT_PROTOCOL, PROTOCOLS


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the `annotate` subcommand."""
    parser = subparsers.add_parser("annotate", help="name the concepts of an FFN run's components")
    parser.add_argument("ffn_dir", help="a finished 'shiftlens ffn' run directory")
    parser.add_argument("--annotator", choices=("llm", "openai", "lexical"), default="llm")
    parser.add_argument("--endpoint", help="OpenAI-compatible base URL (…/v1) or full …/chat/completions URL")
    parser.add_argument("--model", help="model name the endpoint serves")
    parser.add_argument("--runs", type=int, default=5, help="repeated annotation runs (lexical: always 1)")
    parser.add_argument("--concurrency", type=int, default=8, help="requests in flight at most")
    parser.add_argument("--words", type=int, default=15, help="top words shown per component")
    parser.add_argument("--components", type=int, help="label only the first N components of each layer")
    parser.add_argument(
        "--protocol",
        choices=tuple(PROTOCOLS),
        default=DEFAULT_PROTOCOL,
        help="paper: the authors' temperatures (concept 1.0, tasks and level 0); sound: --temperature for all",
    )
    parser.add_argument("--temperature", type=float, help="sampling temperature of every question (default 0.7)")
    parser.add_argument("--top-p", type=float, default=1.0)
    parser.add_argument("--max-tokens", type=int, default=48)
    parser.add_argument("--timeout", type=float, default=60.0, help="seconds per request")
    parser.add_argument("--retries", type=int, default=6, help="retries on 429, 5xx, timeouts")
    parser.add_argument("--backoff", type=float, default=1.0, help="first retry delay in seconds (doubles)")
    parser.add_argument("--out", help="annotation directory (default: FFN_DIR/annotations)")
    parser.add_argument("--cache", help="answer cache JSONL (default: OUT/answers.jsonl)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Build the annotator and run `annotate_ffn`; the API key comes only from the environment."""
    import json

    from shiftlens.errors import ShiftlensError
    from shiftlens.ffn import annotate
    from shiftlens.ffn.annotate import Sampling
    from shiftlens.ffn.annotation_settings import AnnotationSettings
    from shiftlens.ffn.annotators import EndpointSettings, build_annotator

    out = Path(args.out) if args.out else annotate.default_out(args.ffn_dir)
    if args.protocol == "paper" and args.temperature is not None:
        raise ShiftlensError(
            "--protocol paper fixes the temperatures (concept 1.0, tasks and level 0); drop --temperature"
        )
    temperature = Sampling.temperature if args.temperature is None else args.temperature
    endpoint = EndpointSettings(
        args.endpoint,
        args.model,
        timeout=args.timeout,
        retries=args.retries,
        backoff=args.backoff,
        sampling=Sampling(temperature, args.top_p, args.max_tokens),
    )
    setup = build_annotator(args.annotator, out, endpoint, args.runs, args.cache, args.protocol)
    if args.annotator == "lexical":
        print("annotator: lexical (HEURISTIC: WordNet lexicographer files and word lists, not an LLM)")
    try:
        settings = AnnotationSettings(
            args.annotator, args.protocol, setup.runs, args.words, args.components, args.concurrency
        )
        annotate.annotate_ffn(args.ffn_dir, setup.annotator, settings, out=out)
    finally:
        setup.close()
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
