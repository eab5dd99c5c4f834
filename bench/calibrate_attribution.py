"""False-positive rate of the instruction analysis: a random span in place of the instruction, on the organism.

Each draw replaces every example's instruction mask by a random span of the same number of tokens (the
mask rotated by a uniform shift, seeded per draw and example; the same span for base and tuned) and runs
`analyze_records` unchanged. A draw *declares a finding* when any entry of the result's ``finding``
list is significant (Holm-adjusted p < 0.05, all findings of the analysis corrected together). The rate over
draws must stay ≤ 10 % (nominal 5 %); per-finding rates show which test would be wrong for the data.

The attribution runs of organism-base and organism-tuned on the shipped held-out prompts are computed once
with ``shiftlens attribute`` (both explaining the tuned model's stored replies through the tuned chat
template; a few minutes on CPU) and cached under ``out/organism/``. ``--paper-data DIR`` calibrates on the
authors' released LLaMA-7B / Vicuna-7B matrices instead.

    python bench/calibrate_attribution.py [--draws 100] [--protocol sound] [--json out/calibration.json]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np

from shiftlens.analysis.instructions import analyze_records
from shiftlens.attribution.nulls import example_rng, random_placement
from shiftlens.attribution.records import ExampleAttribution, read_attribution_run
from shiftlens.evidence import ALPHA, DEFAULT_PROTOCOL, PROTOCOLS
from shiftlens.organism import data_dir
from shiftlens.paper_data import load_paper_runs

CACHE = Path("out") / "organism"
MAX_RATE = 0.10
SPAN_SEED = 1_000_000  # random spans and control spans use disjoint seed ranges


def attribution_runs(cache: Path) -> tuple[list[ExampleAttribution], list[ExampleAttribution]]:
    """The organism's base and tuned attribution runs, computed with the CLI where not cached yet."""
    organism = data_dir()
    for role in ("tuned", "base"):
        if not (cache / role / "manifest.json").exists():
            command = [
                sys.executable, "-m", "shiftlens.cli.main", "attribute", "--model", f"organism-{role}",
                "--data", str(organism / "prompts.jsonl"), "--out", str(cache / role),
                "--chat-template", str(organism / "tuned" / "chat_template.jinja"),
            ]  # fmt: skip
            print("computing:", " ".join(command), flush=True)
            subprocess.run(command, check=True)
    return read_attribution_run(cache / "base")[1], read_attribution_run(cache / "tuned")[1]


def random_spans(records: list[ExampleAttribution], draw: int) -> dict[str, np.ndarray]:
    """Per example id: its instruction mask rotated by a uniform shift in 0..N−1 (seeded by draw and id)."""
    masks = {}
    for record in records:
        mask = np.asarray(record.instruction_mask, dtype=bool)
        masks[record.id] = random_placement(mask, example_rng(SPAN_SEED + draw, record.id))
    return masks


def calibrate(
    base: list[ExampleAttribution], tuned: list[ExampleAttribution], draws: int, protocol: str
) -> dict[str, Any]:
    """Run the analysis with random spans ``draws`` times; rates of declared findings, overall and per finding.

    Findings are matched across draws by their place in the list (their claims' wording follows the sign).
    """
    declared, significant, raw = 0, Counter(), Counter()
    for draw in range(draws):
        result = analyze_records(base, tuned, protocol=protocol, seed=draw, masks=random_spans(tuned, draw))
        findings = result["finding"]
        declared += any(f["significant"] for f in findings)
        for index, f in enumerate(findings):
            significant[index] += f["significant"]
            raw[index] += f["testable"] and f["p_value"] is not None and f["p_value"] < ALPHA
    return {
        "protocol": protocol,
        "draws": draws,
        "rate": declared / draws,
        "per_finding": [
            {"significant_rate": significant[i] / draws, "raw_p_below_alpha_rate": raw[i] / draws}
            for i in range(len(significant))
        ],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--draws", type=int, default=100, help="random-span draws (at least 50; default 100)")
    parser.add_argument("--protocol", choices=sorted(PROTOCOLS), default=DEFAULT_PROTOCOL)
    parser.add_argument("--cache", type=Path, default=CACHE, help="where the organism attribution runs are cached")
    parser.add_argument("--paper-data", type=Path, help="calibrate on the authors' released data in this directory")
    parser.add_argument("--json", type=Path, help="also write the rates here")
    args = parser.parse_args()
    if args.draws < 50:
        parser.error("--draws must be at least 50")
    if args.paper_data:
        runs = load_paper_runs(args.paper_data, protocol=args.protocol)
        base, tuned = runs.base, runs.tuned
    else:
        base, tuned = attribution_runs(args.cache)
    start = time.perf_counter()
    real = analyze_records(base, tuned, protocol=args.protocol)
    out = calibrate(base, tuned, args.draws, args.protocol)
    out["seconds"] = round(time.perf_counter() - start, 1)
    out["data"] = str(args.paper_data or args.cache)
    for row, f in zip(out["per_finding"], real["finding"]):  # labelled by the real instruction's finding
        row.update(claim=f["claim"], real_p_adjusted=f["p_adjusted"], real_significant=f["significant"])
    for row in out["per_finding"]:
        rates = f"{row['significant_rate']:6.1%}  (raw p < {ALPHA}: {row['raw_p_below_alpha_rate']:6.1%})"
        print(f"{rates}  {row['claim']}")
    verdict = "OK" if out["rate"] <= MAX_RATE else f"TOO HIGH (> {MAX_RATE:.0%})"
    print(
        f"{args.protocol} protocol: a finding declared in {out['rate']:.1%} of {args.draws} random-span draws "
        f"(nominal {ALPHA:.0%}, limit {MAX_RATE:.0%}): {verdict}; {out['seconds']} s"
    )
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(out, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
