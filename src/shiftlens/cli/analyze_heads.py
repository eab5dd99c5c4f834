"""`shiftlens analyze heads BASE_DIR TUNED_DIR`: Table 3 (instruction verbs vs control words in heads), head overlap."""

from __future__ import annotations

import argparse

from shiftlens.cli.analyze import DEVICE_HELP, add_output_options, write_result
from shiftlens.evidence import DEFAULT_PROTOCOL, PROTOCOLS


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the `analyze heads` subcommand."""
    from shiftlens.analysis.heads_settings import HeadsAnalysisSettings

    defaults = HeadsAnalysisSettings()
    parser = subparsers.add_parser("heads", help="instruction verbs vs control words in base and tuned heads")
    parser.add_argument("base_dir", help="`shiftlens heads` output of the base model")
    parser.add_argument("tuned_dir", help="`shiftlens heads` output of the tuned model")
    add_output_options(parser, "heads", "table3.csv and the head-overlap plot (PNG + SVG)")
    parser.add_argument("--instruction-verbs", help="word list replacing the default instruction verbs")
    parser.add_argument("--general-verbs", help="word list replacing the packaged general verbs")
    parser.add_argument(
        "--protocol",
        default=DEFAULT_PROTOCOL,
        choices=tuple(PROTOCOLS),
        help="sound (default): permutation test, matched controls; paper: the authors' Welch test (docs/protocols.md)",
    )
    parser.add_argument("--groups", type=int, help="sound: layer groups (default quarters from 16 layers, else one)")
    parser.add_argument("--min-heads", type=int, default=defaults.min_heads, help="sound: changed heads a word needs")
    parser.add_argument(
        "--controls-per-word", type=int, default=defaults.controls_per_word, help="sound: matched controls per verb"
    )
    parser.add_argument("--permutations", type=int, default=defaults.permutations, help="sound: label shuffles")
    parser.add_argument("--seed", type=int, default=defaults.seed, help="seed of permutations, bootstrap, null draws")
    null = parser.add_argument_group("null baseline of head overlap (reads both models' weights)")
    null.add_argument("--null-draws", type=int, default=0, help="seeded draws of base + tuning-sized noise (0: none)")
    null.add_argument("--base-model", help="base model weights (default: the model the base run recorded)")
    null.add_argument("--tuned-model", help="tuned model weights (default: the model the tuned run recorded)")
    null.add_argument("--vocab", help="the runs' word list (default: the path the base run recorded)")
    null.add_argument("--device", default="auto", help=f"where the null is recomputed: {DEVICE_HELP}")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Run `analyze_heads`, print Table 3, the findings and the null band, and write the asked files."""
    from shiftlens.analysis.heads import INSTRUCTION_VERBS, HeadsAnalysisSettings, analyze_heads, word_list
    from shiftlens.analysis.heads_output import TABLE_COLUMNS, table_rows
    from shiftlens.heads.null import NullSettings
    from shiftlens.models import compute_device
    from shiftlens.tables import print_table

    instruction = word_list(args.instruction_verbs) if args.instruction_verbs else INSTRUCTION_VERBS
    general = word_list(args.general_verbs) if args.general_verbs else None
    settings = HeadsAnalysisSettings(
        protocol=args.protocol,
        n_groups=args.groups,
        min_heads=args.min_heads,
        controls_per_word=args.controls_per_word,
        permutations=args.permutations,
        seed=args.seed,
    )
    null = None
    if args.null_draws:
        device = compute_device(args.device)
        null = NullSettings(args.null_draws, args.seed, args.base_model, args.tuned_model, args.vocab, device)
    result = analyze_heads(args.base_dir, args.tuned_dir, instruction, general, settings=settings, null=null)
    title = f"Heads ({args.protocol} protocol): share of changed heads where tuning added pairs with the word"
    print_table(title, TABLE_COLUMNS, table_rows(result))
    for band in result["head_overlap_null"] or []:
        observed, mean, lo, hi = (_number(band.get(k)) for k in ("observed", "mean", "min", "max"))
        print(f"layer {band['layer']}: overlap {observed}, null {mean} [{lo}, {hi}] over {len(band['draws'])} draws")
    write_result(result, args)
    return 0


def _number(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"
