"""`shiftlens analyze ffn BASE_DIR TUNED_DIR`: concept shares (Table 5, Figure 3), subspace rotation and its null."""

from __future__ import annotations

import argparse
from typing import Any

from shiftlens.cli.analyze import DEVICE_HELP, add_output_options, write_result
from shiftlens.evidence import ALPHA, DEFAULT_PROTOCOL, PROTOCOLS


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add `analyze ffn`."""
    parser = subparsers.add_parser("ffn", help="base vs tuned FFN concepts and their rotation")
    parser.add_argument("base_dir", help="'shiftlens ffn' run of the base model")
    parser.add_argument("tuned_dir", help="'shiftlens ffn' run of the tuned model")
    parser.add_argument("--base-annotations", help="annotation directory (default: BASE_DIR/annotations)")
    parser.add_argument("--tuned-annotations", help="annotation directory (default: TUNED_DIR/annotations)")
    parser.add_argument("--overlap-words", type=int, default=15, help="top words compared for matched pairs")
    parser.add_argument(
        "--protocol",
        choices=tuple(PROTOCOLS),
        default=DEFAULT_PROTOCOL,
        help="sound: components as the unit (permutation by layer); paper: Student's t over annotation runs",
    )
    parser.add_argument(
        "--null-draws",
        type=int,
        default=0,
        help="rotation null: N seeded draws of base + tuning-sized noise (loads both models; the finding needs 5+)",
    )
    parser.add_argument("--null-seed", type=int, default=0, help="first seed of the null draws")
    parser.add_argument("--base-model", help="model for the null (default: the one BASE_DIR's manifest names)")
    parser.add_argument("--tuned-model", help="model for the null (default: the one TUNED_DIR's manifest names)")
    parser.add_argument("--device", default="auto", help=f"where the null's PCAs run: {DEVICE_HELP}")
    add_output_options(parser, "ffn", "the rotation figure and, with annotations, Figure 3's (PNG + SVG)")
    parser.set_defaults(func=run)


def _load_run_model(run_dir: str, override: str | None, device: str) -> Any:
    """The model an FFN run explained (as its manifest names it), or ``override``."""
    from shiftlens.models import load_model
    from shiftlens.runs import model_record
    from shiftlens.storage import read_manifest

    info = model_record(read_manifest(run_dir))
    return load_model(
        override or info["name"],
        gguf_file=None if override else info.get("gguf_file"),
        adapter=None if override else info.get("adapter"),
        dtype=info.get("dtype", "float32"),
        device=device,
    )


def _cell(side: dict[str, Any], paper: bool) -> str:
    """ "5/32 (0.156)", with ± std over runs only under the paper protocol and a non-zero spread of runs."""
    from shiftlens.ffn.table5 import fmt_count

    if side["share"] is None:
        return "—"
    text = f"{fmt_count(side['count'])}/{fmt_count(side['n'])} ({side['share']:.3f}"
    if paper and side["units"] > 1 and side["std"] > 0:
        text += f"±{side['std']:.3f}"
    return text + ")"


def _verdict(row: dict[str, Any]) -> str:
    if not row["testable"]:
        return f"not testable ({row['reason']})"
    low, high = row["ci"]
    return (
        f"Δ {row['difference']:+.3f} [{low:+.3f}, {high:+.3f}]  p {row['p_value']:.3g}  "
        f"p_adj {row['p_adjusted']:.3g}" + ("  *" if row["significant"] else "")
    )


def _print_table(name: str, table: dict[str, dict[str, Any]], paper: bool) -> None:
    print(f"{name:<22} {'base':>20} {'tuned':>20}  base → tuned")
    for category, row in table.items():
        print(f"{category:<22} {_cell(row['base'], paper):>20} {_cell(row['tuned'], paper):>20}  {_verdict(row)}")


def _print_concepts(result: dict[str, Any]) -> None:
    paper = result["protocol"] == "paper"
    if result["annotations"]["heuristic"]:
        print("NOTE: labels from the HEURISTIC lexical annotator, not from a language model")
    unit = "labels over runs" if paper else "components (runs averaged per component)"
    print(f"protocol {result['protocol']}: {result['test']}; counts are {unit}")
    _print_table("task", result["tasks"], paper)
    _print_table("linguistic level", result["levels"], paper)
    _print_table("", {"nameable share": result["nameable_share"]}, paper)
    rows = [*result["tasks"].values(), *result["levels"].values(), result["nameable_share"]]
    tested = [r for r in rows if r["testable"]]
    significant = sum(r["significant"] for r in tested)
    if tested:
        print(
            f"{significant} of {len(tested)} testable rows differ at p_adjusted < {ALPHA} (Holm over all claims); "
            f"{len(rows) - len(tested)} not testable"
        )
    else:
        print(f"no row is testable ({len(rows)} rows): no claim about the concept shares")


def _print_rotation(result: dict[str, Any]) -> None:
    print(f"R = {result['components']} components per layer of hidden size {result['hidden']}")
    has_null = "rotation_null" in result["rotation_by_layer"][0]
    header = f"{'layer':>5} {'angle°':>8} {'|cos|':>7} {'overlap':>8}"
    print(header + (f" {'null angle° [min, max]':>28} {'p':>7}" if has_null else ""))
    for row in result["rotation_by_layer"]:
        line = (
            f"{row['layer']:>5} {row['mean_principal_angle_deg']:>8.2f} "
            f"{row['matched_abs_cos_mean']:>7.3f} {row['word_overlap_mean']:>8.3f}"
        )
        if has_null:
            band = row["rotation_null"]
            null = f"{band['mean_deg']:.2f} [{band['low_deg']:.2f}, {band['high_deg']:.2f}] {band['position']}"
            line += f" {null:>28} {band['p_value']:>7.3g}"
        print(line)
    if has_null:
        finding = result["rotation_null"]["finding"]
        print(finding["claim"] + (f": not testable ({finding['reason']})" if not finding["testable"] else ""))
        if finding["testable"]:
            print(f"  two-sided Monte Carlo p {finding['p_value']:.3g}, p_adjusted {finding['p_adjusted']:.3g}")
    else:
        print("no null band for the rotation (add --null-draws N to compare with tuning-sized random updates)")


def run(args: argparse.Namespace) -> int:
    """Run `analyze_ffn`, print the tables, write what --out/--json ask for."""
    from shiftlens.analysis.ffn import analyze_ffn
    from shiftlens.models import compute_device

    models, args.device = None, compute_device(args.device)
    if args.null_draws > 0:
        models = (
            _load_run_model(args.base_dir, args.base_model, args.device),
            _load_run_model(args.tuned_dir, args.tuned_model, args.device),
        )
    result = analyze_ffn(
        args.base_dir,
        args.tuned_dir,
        base_annotations=args.base_annotations,
        tuned_annotations=args.tuned_annotations,
        overlap_words=args.overlap_words,
        protocol=args.protocol,
        null_models=models,
        null_draws=args.null_draws,
        null_seed=args.null_seed,
        device=args.device,
    )
    if result["annotations"] is None:
        print("no annotations on both sides: rotation only (run 'shiftlens annotate' for the concept tables)")
    else:
        _print_concepts(result)
    _print_rotation(result)
    write_result(result, args)
    return 0
