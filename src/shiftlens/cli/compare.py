"""`shiftlens compare BASE TUNED`: every method on both models, the analyses and one HTML report."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from shiftlens.compare.settings import METHODS, RESPONSES, CompareSettings
from shiftlens.evidence import DEFAULT_PROTOCOL, PROTOCOLS

if TYPE_CHECKING:
    from shiftlens.compare import CompareSummary


def add_method_arguments(parser: argparse.ArgumentParser, default_out: Path | None = None) -> None:
    """Options shared by `compare` and `demo`: output, which methods, annotator."""
    parser.add_argument(
        "--out",
        required=default_out is None,
        default=default_out,
        type=Path,
        help="comparison directory (resumed when it exists)" + (f"; default {default_out}" if default_out else ""),
    )
    parser.add_argument(
        "--methods", default=",".join(METHODS), help=f"comma-separated subset of {','.join(METHODS)} (default all)"
    )
    parser.add_argument(
        "--annotator",
        default="lexical",
        choices=("lexical", "openai", "llm", "none"),
        help="FFN concept labels: offline lexical heuristic (default), an OpenAI-compatible endpoint, or none",
    )
    parser.add_argument("--endpoint", help="OpenAI-compatible base URL (…/v1); key from SHIFTLENS_API_KEY")
    parser.add_argument("--model", dest="annotator_model", help="model name the endpoint serves")
    parser.add_argument("--annotation-runs", type=int, default=5, help="repeated LLM annotation runs (default 5)")
    parser.add_argument(
        "--protocol",
        default=DEFAULT_PROTOCOL,
        choices=tuple(PROTOCOLS),
        help=f"analysis protocol (default {DEFAULT_PROTOCOL}): "
        + "; ".join(f"{name}: {meaning}" for name, meaning in PROTOCOLS.items()),
    )
    parser.add_argument(
        "--null-draws",
        type=int,
        default=CompareSettings.null_draws,
        help="seeded draws of base + noise of the tuning's size behind the heads and FFN null bands "
        f"(default {CompareSettings.null_draws}; 0 = no null band)",
    )


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the `compare` subcommand."""
    parser = subparsers.add_parser("compare", help="compare a base and a tuned model: all methods + HTML report")
    parser.add_argument("base", help="base model: hub id, local directory, .gguf file or built-in name")
    parser.add_argument("tuned", help="tuned model (same forms); or the base again with --tuned-adapter")
    parser.add_argument("--data", required=True, type=Path, help="prompts: .jsonl or the paper's .tsv format")
    parser.add_argument("--vocab", required=True, type=Path, help="word list for heads and FFN (word<TAB>freq)")
    add_method_arguments(parser)
    parser.add_argument(
        "--responses",
        default="tuned",
        choices=RESPONSES,
        help="tuned: both explain the tuned model's generation (default); each: every model its own; data: the data's",
    )
    parser.add_argument("--base-gguf-file", help="GGUF file name inside BASE's directory")
    parser.add_argument("--tuned-gguf-file", help="GGUF file name inside TUNED's directory")
    parser.add_argument("--tuned-adapter", help="PEFT/LoRA adapter merged into TUNED")
    parser.add_argument("--dtype", default="float32", choices=("float32", "bfloat16", "float16"))
    parser.add_argument("--device", default="cpu", help="cpu, cuda[:N] or auto")
    parser.add_argument("--trust-remote-code", action="store_true", help="run code from the models' repositories")
    parser.add_argument("--max-new-tokens", type=int, default=300, help="generation length limit (default 300)")
    parser.add_argument("--limit", type=int, help="only the first N examples")
    parser.add_argument("--ratings", type=Path, help="ratings of the tuned responses to join by id")
    parser.add_argument("--cooccurrence", default="ppmi:wordnet", help="heads pair filter (see `shiftlens heads`)")
    parser.add_argument("--top-k", type=int, default=100, help="heads: candidate words per dimension and side")
    parser.add_argument(
        "--components", type=int, help="FFN: principal components R per layer (default: 300/4096 of the hidden size)"
    )
    parser.add_argument("--layers", help="layers for heads and FFN, e.g. 0,3,10-12 (default all)")
    parser.add_argument("--vocab-top", type=int, help="FFN: keep only the N most frequent words")
    parser.add_argument("--instruction-verbs", type=Path, help="word list of instruction verbs for Table 3")
    parser.add_argument(
        "--allow-different-tokenizers",
        action="store_true",
        help="compare models whose tokenizers differ (per-token views are then not comparable)",
    )
    parser.set_defaults(func=run)


def settings_from(args: argparse.Namespace, **overrides: object) -> CompareSettings:
    """The `CompareSettings` of parsed arguments (options a command lacks come from ``overrides``)."""
    from shiftlens.ffn.annotators import EndpointSettings

    values = {
        "methods": tuple(m.strip() for m in args.methods.split(",") if m.strip()),
        "annotator": None if args.annotator == "none" else args.annotator,
        "annotation_runs": args.annotation_runs,
        "endpoint": EndpointSettings(args.endpoint, args.annotator_model),
        "protocol": args.protocol,
        "null_draws": args.null_draws,
        **overrides,
    }
    return CompareSettings(**values)


def report_summary(summary: CompareSummary) -> int:
    """Print where the report and results are; exit code 0."""
    print(f"wrote {summary.report}")
    print(f"results: {summary.results}; per-method runs and tables under {summary.path}")
    return 0


def run(args: argparse.Namespace) -> int:
    """Call `shiftlens.compare.compare` with the parsed options."""
    from shiftlens.analysis.heads import word_list
    from shiftlens.compare import ModelSpec, compare
    from shiftlens.options import parse_layers

    layers = parse_layers(args.layers)
    settings = settings_from(
        args,
        responses=args.responses,
        dtype=args.dtype,
        device=args.device,
        trust_remote_code=args.trust_remote_code,
        max_new_tokens=args.max_new_tokens,
        limit=args.limit,
        ratings=None if args.ratings is None else str(args.ratings),
        cooccurrence=args.cooccurrence,
        heads_top_k=args.top_k,
        components=args.components,
        layers=None if layers is None else tuple(layers),
        vocab_top=args.vocab_top,
        instruction_verbs=tuple(word_list(args.instruction_verbs)) if args.instruction_verbs else None,
        allow_different_tokenizers=args.allow_different_tokenizers,
    )
    summary = compare(
        ModelSpec(args.base, args.base_gguf_file),
        ModelSpec(args.tuned, args.tuned_gguf_file, args.tuned_adapter),
        args.data,
        args.vocab,
        args.out,
        settings,
        log=lambda message: print(message, file=sys.stderr),
    )
    return report_summary(summary)
