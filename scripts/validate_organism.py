"""Planted-signal validation of the shipped organism: does each method find what instruction tuning planted?

(a) attribution: instruction scores of organism-tuned vs organism-base on the held-out prompts (Welch,
one-sided), and followed vs unfollowed responses of the tuned model (Welch, two-sided); follow accuracy
is re-measured by greedy generation. (b) heads: Table 3 (share of heads where the tuned model has more
word pairs with a word) for the organism's instruction verbs vs other words. (c) FFN: mean principal
angle between base and tuned components.
Usage: python scripts/validate_organism.py [--json PATH] [--limit N] [--dir BUILD_DIR]
"""

from __future__ import annotations

import argparse
import json
import math
import tempfile
from pathlib import Path

import numpy as np

from shiftlens.models import load_model
from shiftlens.organism import data_dir
from shiftlens.organism.evaluate import accuracy, greedy_responses
from shiftlens.organism.tasks import from_record
from shiftlens.organism.validation import (
    attribution_input,
    example_score,
    ffn_check,
    heads_check,
    two_sided_welch,
)
from shiftlens.progress import progress
from shiftlens.stats import summary, welch_less


def follow_accuracy(base, tuned, records: list[dict]) -> dict:
    """Greedy follow accuracy of both models on the records, and whether tuned replies match the file."""
    examples = [from_record(r) for r in records]
    prompts = [r["prompt"] for r in records]
    out = {}
    for name, loaded in (("base", base), ("tuned", tuned)):
        replies = greedy_responses(loaded.model, tuned.tokenizer, prompts)
        out[name] = accuracy(examples, replies)
        if name == "tuned":
            out["tuned_replies_match_file"] = sum(a == r["response"] for a, r in zip(replies, records)) / len(records)
    return out


def attribution_check(base, tuned, records: list[dict]) -> dict:
    """Instruction scores of both models per record, and the two Welch tests."""
    scores = {"base": [], "tuned": []}
    followed = []
    for record in progress(records, total=len(records), desc="attribution", unit="example"):
        if not record["response"]:
            continue
        example = attribution_input(tuned.tokenizer, record)
        scores["base"].append(example_score(base.model, example))
        scores["tuned"].append(example_score(tuned.model, example))
        followed.append(record["rating"] >= 2)
    tuned_scores = np.array(scores["tuned"])
    mask = np.array(followed)
    return {
        "attribution_p": welch_less(scores["base"], scores["tuned"]),
        "score_base": summary(scores["base"]),
        "score_tuned": summary(scores["tuned"]),
        "score_tuned_followed": summary(tuned_scores[mask]),
        "score_tuned_unfollowed": summary(tuned_scores[~mask]),
        "followed_vs_unfollowed_p": two_sided_welch(list(tuned_scores[mask]), list(tuned_scores[~mask])),
    }


def finite(value):
    """The value with NaN floats replaced by None, recursively (JSON has no NaN)."""
    if isinstance(value, dict):
        return {k: finite(v) for k, v in value.items()}
    if isinstance(value, list):
        return [finite(v) for v in value]
    return None if isinstance(value, float) and math.isnan(value) else value


def main() -> None:
    """Run the checks and print (and optionally write) the JSON summary."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", type=Path, help="write the summary here")
    parser.add_argument("--limit", type=int, help="use only the first N held-out prompts")
    parser.add_argument("--components", type=int, default=64, help="FFN principal components per layer")
    parser.add_argument("--dir", type=Path, default=data_dir(), help="an organism build (default: the shipped one)")
    args = parser.parse_args()
    with (args.dir / "prompts.jsonl").open(encoding="utf-8") as handle:
        records = [json.loads(line) for line in handle if line.strip()][: args.limit]
    base, tuned = load_model(str(args.dir / "base")), load_model(str(args.dir / "tuned"))
    vocab = args.dir / "vocab.tsv"
    follow = follow_accuracy(base, tuned, records)
    result = {
        "n_prompts": len(records),
        "follow_acc_base": follow["base"]["mean"],
        "follow_acc_tuned": follow["tuned"]["mean"],
        "follow_by_task": {"base": follow["base"]["tasks"], "tuned": follow["tuned"]["tasks"]},
        "tuned_replies_match_file": follow["tuned_replies_match_file"],
        **attribution_check(base, tuned, records),
    }
    print(json.dumps(finite(result)), flush=True)  # the slow part's figures, before the heads and FFN checks
    with tempfile.TemporaryDirectory() as workdir:
        result.update(heads_check(base, tuned, vocab, Path(workdir)))
        result.update(ffn_check(base, tuned, vocab, Path(workdir), args.components))
    text = json.dumps(finite(result), indent=2)
    print(text)
    if args.json:
        args.json.write_text(text + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
