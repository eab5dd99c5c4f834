"""`shiftlens analyze ffn BASE_DIR TUNED_DIR`: concept shares (Table 5, Figure 3) and subspace rotation."""

from __future__ import annotations

import argparse
from pathlib import Path


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add `analyze ffn`."""
    parser = subparsers.add_parser("ffn", help="base vs tuned FFN concepts and their rotation")
    parser.add_argument("base_dir", help="'shiftlens ffn' run of the base model")
    parser.add_argument("tuned_dir", help="'shiftlens ffn' run of the tuned model")
    parser.add_argument("--base-annotations", help="annotation directory (default: BASE_DIR/annotations)")
    parser.add_argument("--tuned-annotations", help="annotation directory (default: TUNED_DIR/annotations)")
    parser.add_argument("--overlap-words", type=int, default=15, help="top words compared for matched pairs")
    parser.add_argument("--json", help="write the result as JSON here")
    parser.add_argument("--out", help="directory for figures (PNG and SVG)")
    parser.set_defaults(func=run)


def _print_table(name: str, table: dict) -> None:
    print(f"{name:<22} {'base':>15} {'tuned':>15} {'p':>8}")
    for category, row in table.items():
        cells = [
            "—" if row[m]["mean"] is None else f"{row[m]['mean']:.3f}±{row[m]['std']:.3f}" for m in ("base", "tuned")
        ]
        p = "—" if row["p_value"] is None else f"{row['p_value']:.3g}"
        print(f"{category:<22} {cells[0]:>15} {cells[1]:>15} {p:>8}")


def run(args: argparse.Namespace) -> int:
    """Run `analyze_ffn`, print the tables, write JSON and figures when asked."""
    from shiftlens.ffn.analysis import analyze_ffn
    from shiftlens.ffn.figures import write_analysis
    from shiftlens.storage import atomic_write_json

    result = analyze_ffn(
        args.base_dir,
        args.tuned_dir,
        base_annotations=args.base_annotations,
        tuned_annotations=args.tuned_annotations,
        overlap_words=args.overlap_words,
    )
    annotations = result["annotations"]
    if annotations is None:
        print("no annotations on both sides: rotation only (run 'shiftlens annotate' for the concept tables)")
    else:
        if annotations["heuristic"]:
            print("NOTE: labels from the HEURISTIC lexical annotator, not from a language model")
        _print_table("task", result["tasks"])
        _print_table("linguistic level", result["levels"])
    print(f"{'layer':>5} {'angle°':>8} {'|cos|':>7} {'overlap':>8}")
    for row in result["rotation_by_layer"]:
        print(
            f"{row['layer']:>5} {row['mean_principal_angle_deg']:>8.2f} "
            f"{row['matched_abs_cos_mean']:>7.3f} {row['word_overlap_mean']:>8.3f}"
        )
    if args.out:
        paths = write_analysis(result, Path(args.out), Path(args.json) if args.json else None)
        print("wrote " + ", ".join(str(p) for p in paths))
    elif args.json:
        atomic_write_json(Path(args.json), result)
        print(f"wrote {args.json}")
    return 0
