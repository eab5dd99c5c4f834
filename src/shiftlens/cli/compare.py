"""`shiftlens compare BASE TUNED`: every method on both models, the analyses and one HTML report.

Its flags are generated: the models' loading options from `ModelSpec` (``--dtype``, ``--device``,
``--trust-remote-code`` for both; ``--base-gguf-file``, ``--tuned-adapter``, ... for one), and every
`CompareSettings` field, each method's after its name (``--attribution-objective``, ``--heads-candidates``,
``--ffn-words-per-component``, ``--annotation-runs``) and the LLM annotator's after ``annotator``
(``--annotator-endpoint``, ``--annotator-model``, as in `shiftlens annotate`). `ALIASES` keeps short
spellings that mean the same in the method commands; `DEPRECATED` the old ones, which warn.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from shiftlens.cli.common import add_force_argument, out_dir
from shiftlens.cli.flags import add_settings, renamed, settings_from
from shiftlens.compare.settings import COMPARE_SETS, CompareSettings, EndpointSettings, ModelSpec
from shiftlens.ffn.annotators import check_endpoint
from shiftlens.models.spec import check_name

if TYPE_CHECKING:
    from shiftlens.compare import CompareSummary

ROLES = ("base", "tuned")
PER_MODEL = ("gguf_file", "adapter")  # --base-gguf-file, ...; the other loading options are shared by both
# set by compare itself, read from a file (--instruction-verbs), or compare's own (its annotator and protocol):
EXCLUDED = ("instruction_verbs", *(f"attribution.{n}" for n in COMPARE_SETS), "annotation.annotator")
EXCLUDED += ("annotation.protocol",)
ALIASES = {
    "attribution.limit": ["--limit"],
    "attribution.ratings": ["--ratings"],
    "attribution.max_new_tokens": ["--max-new-tokens"],
    "heads.cooccurrence": ["--cooccurrence"],
    "ffn.components": ["--components"],
}
DEPRECATED = renamed(EndpointSettings, "annotation", under=("endpoint",))  # --annotation-endpoint, ...
DEPRECATED["heads.top_k"] = ["--top-k"]  # the heads' candidates; the FFN's words are --ffn-words-per-component
DEPRECATED["ffn.vocab_top"] = ["--vocab-top"]  # the heads have one too: --heads-vocab-top
DEPRECATED["endpoint.endpoint"] += ["--endpoint"]
DEPRECATED["endpoint.model"] += ["--model"]  # --model is the analysed model everywhere else


def add_compare_settings(parser: argparse.ArgumentParser, defaults: CompareSettings | None = None) -> None:
    """Every `CompareSettings` flag (shared by `compare` and `demo`) and ``--instruction-verbs FILE``."""
    add_settings(
        parser, CompareSettings, title="comparison", exclude=EXCLUDED, defaults=defaults, aliases=ALIASES,
        deprecated=DEPRECATED,
    )  # fmt: skip
    parser.add_argument(
        "--instruction-verbs", type=Path, metavar="FILE", help="word list of instruction verbs for Table 3"
    )


def compare_settings(args: argparse.Namespace, defaults: CompareSettings | None = None, **overrides: Any) -> Any:
    """The `CompareSettings` of the parsed flags; the verbs from ``--instruction-verbs`` when given."""
    if args.instruction_verbs is not None:
        from shiftlens.analysis.heads import word_list

        overrides["instruction_verbs"] = tuple(word_list(args.instruction_verbs))
    return settings_from(args, CompareSettings, exclude=EXCLUDED, defaults=defaults, **overrides)


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the `compare` subcommand."""
    parser = subparsers.add_parser("compare", help="compare a base and a tuned model: all methods + HTML report")
    parser.add_argument("base", help="base model: hub id, local directory, .gguf file or built-in name")
    parser.add_argument("tuned", help="tuned model (same forms); or the base again with --tuned-adapter")
    parser.add_argument("--data", required=True, type=Path, help="prompts: .jsonl or the paper's .tsv format")
    parser.add_argument("--vocab", required=True, type=Path, help="word list for heads and FFN (word<TAB>freq)")
    parser.add_argument("--out", required=True, type=out_dir, help="comparison directory (resumed when it exists)")
    add_force_argument(parser)
    models = parser.add_argument_group("models")
    add_settings(models, ModelSpec, exclude=PER_MODEL)
    for role in ROLES:
        add_settings(models, ModelSpec, role, only=PER_MODEL)
    add_compare_settings(parser)
    parser.set_defaults(func=run)


def check_names(args: argparse.Namespace) -> None:
    """Both models' names, GGUF files and adapters (`check_name`), before torch loads to resolve the device."""
    for role in ROLES:
        check_name(getattr(args, role), getattr(args, f"{role}_gguf_file"), getattr(args, f"{role}_adapter"))


def check_endpoint_of(settings: CompareSettings) -> None:
    """The LLM annotator's endpoint probed before torch loads (a dead one fails at once), if the FFN step runs."""
    if "ffn" in settings.methods:
        check_endpoint(settings.annotator, settings.endpoint)


def model_specs(args: argparse.Namespace) -> dict[str, ModelSpec]:
    """The base's and the tuned model's `ModelSpec` (shared loading options, per-model files and adapter)."""
    shared = settings_from(args, ModelSpec, exclude=PER_MODEL, name="")
    return {role: settings_from(args, ModelSpec, role, only=PER_MODEL, defaults=shared,
                                name=getattr(args, role)) for role in ROLES}  # fmt: skip


def report_summary(summary: CompareSummary) -> int:
    """Print where the report and results are; exit code 0."""
    print(f"wrote {summary.report}")
    print(f"results: {summary.results}; per-method runs and tables under {summary.path}")
    return 0


def run(args: argparse.Namespace) -> int:
    """Call `shiftlens.compare.compare` with the parsed options; what fails without torch is checked first."""
    check_names(args)
    settings = compare_settings(args)
    check_endpoint_of(settings)
    specs = model_specs(args)
    from shiftlens.compare import compare

    log = lambda message: print(message, file=sys.stderr)  # noqa: E731
    summary = compare(
        specs["base"], specs["tuned"], args.data, args.vocab, args.out, settings, log=log, force=args.force
    )
    return report_summary(summary)
