"""Negative controls of all three methods (issue 14): organism-base against organism-base + noise as large as
organism-tuned's update (`shiftlens.nulls.perturb_like`, every parameter row by row), and against itself.

The planted words are those of the surgery pair (`shiftlens.validation.planted`: 16 general verbs, one concept);
the ground truth is rewritten with organism-tuned as the tuned model, so `shiftlens validate`'s noise draws
have the real tuning's size. Prints the per-method false-positive rates (share of draws with p < 0.05), the
draws' p-values and the full report; ``--json`` keeps the result.
With ``--heads-words N`` Table 3 is tested on N random general verbs instead (planted nowhere), enough that
it is usually testable under noise.
Run: ``.venv/bin/python bench/heads_negative_control.py [--draws 10] [--limit 40] [--heads-words N] [--json PATH]``.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import numpy as np

from shiftlens.analysis.heads import word_list
from shiftlens.validation.planted import build_planted_pair
from shiftlens.validation.report import report_text
from shiftlens.validation.run import validate
from shiftlens.validation.truth import write_ground_truth


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--draws", type=int, default=10)
    parser.add_argument("--limit", type=int, default=40, help="prompts attributed per model")
    parser.add_argument(
        "--heads-words",
        type=int,
        help="test Table 3 on N random general verbs instead of the 16 planted ones (so that it is testable)",
    )
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        truth = json.loads(build_planted_pair(tmp, n_prompts=args.limit).read_text())
        truth["models"] = {"base": "organism-base", "continued": None, "tuned": {"0": "organism-tuned"}}
        if args.heads_words:
            vocabulary = {line.split("\t")[0].lower() for line in (Path(tmp) / "vocab.tsv").read_text().splitlines()}
            verbs = sorted(w for w in word_list() if w in vocabulary)
            chosen = np.random.default_rng(1).choice(verbs, args.heads_words, replace=False)
            truth["heads"]["relations"] = [{"query": str(w), "keys": []} for w in chosen]
        write_ground_truth(tmp, truth)
        result = validate(tmp, draws=args.draws)
    rates = result["false_positive_rate"]
    for draw, values in enumerate(rates["per_draw"]):
        print(f"draw {draw}: " + ", ".join(f"{k} p = {v}" for k, v in values.items()))
    print(report_text(result))
    print(
        "false-positive rates: "
        + ", ".join(
            f"{k} {rates[k]}" for k in ("attribution", "attribution_placement", "attribution_score", "heads", "ffn")
        )
    )
    print(f"testable draws: {rates['testable_draws']} of {rates['draws']}")
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
