"""Planted-signal validation of the organism v2: does each method recover what tuning planted, per tuning seed,
and stay quiet on the base continued on pre-training for as many steps?

Reads a build's ``ground_truth.json`` (docs/organism.md). Per seed: follow accuracy (greedy); attribution
(instruction score tuned vs base on followed prompts, paired one-sided; the same gain on the instruction
minus on the control span; Table 1 AUC of followed vs unfollowed, with a label-permutation p); heads
(recall / precision of the planted verb → word relations, Table 3 of the planted verbs, sound protocol);
FFN (share of invented words in components holding ≥ 3 of them, against random word sets). The same
figures for the continued model stand beside them; Holm across the three methods per model.
The checker of the unshipped v2 build (docs/organism.md); `shiftlens validate` is the general command.
Usage: python scripts/measure_organism_v2.py [--json PATH] [--limit N] [--dir BUILD_DIR] [--seeds 0,1,2]
"""

from __future__ import annotations

import argparse
import json
import math
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from shiftlens.evidence import holm
from shiftlens.models import load_model
from shiftlens.organism import data_dir
from shiftlens.organism.evaluate import greedy_responses
from shiftlens.organism.planted import FOLLOWED, accuracy
from shiftlens.organism.validation import ffn_recovery, heads_recovery, span_scores
from shiftlens.stats import label_permutation_p, paired_cohens_dz, paired_less, roc_auc, summary

METHODS = ("attribution", "heads", "ffn")


def attribution_figures(base: dict, other: dict, followed: np.ndarray) -> dict[str, Any]:
    """Tuned (or continued) vs base instruction scores on the followed records, the control-span contrast and
    Table 1 (the other model's scores, followed vs unfollowed)."""
    b_i, o_i = base["instruction"][followed], other["instruction"][followed]
    gain_i = o_i - b_i
    gain_c = other["control"][followed] - base["control"][followed]
    return {
        "attribution_p": paired_less(b_i, o_i),
        "attribution_dz": paired_cohens_dz(b_i, o_i),
        "score_base": summary(b_i),
        "score_model": summary(o_i),
        "attribution_control_p": paired_less(gain_c, gain_i),
        "gain_instruction_minus_control": summary(gain_i - gain_c),
        "table1_auc": roc_auc(other["instruction"], followed),
        "table1_p": label_permutation_p(other["instruction"][~followed], other["instruction"][followed]),
        "score_followed": summary(other["instruction"][followed]),
        "score_unfollowed": summary(other["instruction"][~followed]),
    }


def heads_figures(runs: dict[str, Path], name: str, ground_truth: dict) -> dict[str, Any]:
    """Planted relations recovered in ``name``'s heads run, and Table 3 of the planted verbs vs base."""
    from shiftlens.analysis.heads import analyze_heads
    from shiftlens.heads.records import read_pair_rows

    verbs = [r["query"] for r in ground_truth["heads"]["relations"]]
    recovery = heads_recovery(read_pair_rows(runs[name]), ground_truth)
    group = analyze_heads(runs["base"], runs[name], instruction=verbs, n_groups=1).groups[0]
    return {
        "heads_planted_recall": recovery["recall"],
        "heads_planted_precision": recovery["precision"],
        "heads_recovery": recovery,
        "heads_p": group.get("p_value"),
        "heads_table3": {k: group.get(k) for k in ("instruction", "general", "p_value", "testable", "reason")},
    }


def ffn_figures(run_dir: Path, ground_truth: dict) -> dict[str, Any]:
    """Invented words among the components' top words, beside random word sets; lexical labels of the holders."""
    from shiftlens.ffn.lexical import LexicalAnnotator
    from shiftlens.ffn.records import read_ffn_run

    run = read_ffn_run(run_dir)
    keys = [(layer, c) for layer, rec in run.layers.items() for c in range(len(rec.top_indices))]
    tops = [run.top_words(layer, c) for layer, c in keys]
    planted = ground_truth["ffn"]["concepts"][0]["words"]
    recovery = ffn_recovery(tops, planted, run.words)
    annotator = LexicalAnnotator()
    labels = [annotator.label(run.top_words(*keys[i], 15)) for i in recovery["component_indices"]]
    recovery["holders"] = [
        {"layer": keys[i][0], "component": keys[i][1], "concept": lab.concept, "tasks": lab.tasks}
        for i, lab in zip(recovery.pop("component_indices"), labels)
    ]
    return {"ffn_planted_recall": recovery["recall"], "ffn_p": recovery["p_value"], "ffn_recovery": recovery}


def finite(value):
    """The value with NaN floats replaced by None, recursively (JSON has no NaN)."""
    if isinstance(value, dict):
        return {k: finite(v) for k, v in value.items()}
    if isinstance(value, list):
        return [finite(v) for v in value]
    if isinstance(value, np.floating):
        value = float(value)
    return None if isinstance(value, float) and math.isnan(value) else value


def spread(values: list[float | None]) -> dict[str, float | None]:
    """Mean, standard deviation, min and max over seeds (None values left out)."""
    v = [x for x in values if x is not None and not (isinstance(x, float) and math.isnan(x))]
    if not v:
        return {"mean": None, "std": None, "min": None, "max": None}
    return {
        "mean": float(np.mean(v)),
        "std": float(np.std(v, ddof=1)) if len(v) > 1 else 0.0,
        "min": float(min(v)),
        "max": float(max(v)),
    }


KEYS = (
    "follow_acc",
    "attribution_p",
    "attribution_control_p",
    "table1_auc",
    "heads_planted_recall",
    "heads_planted_precision",
    "heads_p",
    "ffn_planted_recall",
    "ffn_p",
)


def summarize(tuned: dict[str, dict], continued: dict, common: dict, base: dict) -> dict[str, Any]:
    """The contract's JSON: each figure as mean ± spread over the seeds, the continued model's beside them."""
    return {
        **common,
        "follow_acc_continued": continued["follow_acc"],
        "follow_acc_tuned": spread([t["follow_acc"] for t in tuned.values()]),
        **{k: spread([t[k] for t in tuned.values()]) for k in KEYS if k != "follow_acc"},
        "continued_vs_base": {k: continued[k] for k in KEYS},
        "base": base,
        "seeds": tuned,
        "continued": continued,
    }


def aligned_scores(work: Path, names: dict[str, str], records: list[dict]) -> tuple[dict, np.ndarray]:
    """Each model's stored span scores on the records every model was measured on (by id, in file order),
    and which of those records are followed."""
    stored = {}
    for name in names:
        data = dict(np.load(work / name / "scores.npz"))
        ids = data.pop("ids", np.array([r["id"] for r in records]))  # a measurement of every record
        stored[name] = {i: {k: v[j] for k, v in data.items()} for j, i in enumerate(ids.tolist())}
    common = [r for r in records if all(r["id"] in s for s in stored.values())]
    scores = {
        name: {k: np.array([s[r["id"]][k] for r in common]) for k in ("instruction", "control")}
        for name, s in stored.items()
    }
    return scores, np.array([r["rating"] >= FOLLOWED for r in common])


def evaluate(work: Path, names: dict[str, str], ground_truth: dict, records: list[dict]) -> dict:
    """Every method's figures per tuned seed and for the continued model, from the stored measurements."""
    from shiftlens.heads.records import read_pair_rows

    acc = {name: json.loads((work / name / "done.json").read_text())["accuracy"] for name in names}
    scores, followed = aligned_scores(work, names, records)
    n = len(followed)
    per_model = {}
    for name in names:
        if name == "base":
            continue
        runs = {m: work / m / "heads" for m in names}
        figures = {
            "follow_acc": acc[name]["mean"],
            **attribution_figures(scores["base"], scores[name], followed),
            **heads_figures(runs, name, ground_truth),
            **ffn_figures(work / name / "ffn", ground_truth),
        }
        raw = [figures["attribution_p"], figures["heads_p"], figures["ffn_p"]]
        testable = [i for i, p in enumerate(raw) if p is not None and not math.isnan(p)]
        figures["p_holm"] = dict(zip([METHODS[i] for i in testable], holm([raw[i] for i in testable])))
        per_model[name] = figures
    base_heads = heads_recovery(read_pair_rows(work / "base" / "heads"), ground_truth)
    return summarize(
        {name.removeprefix("tuned-"): f for name, f in per_model.items() if name.startswith("tuned-")},
        per_model["continued"],
        {"follow_acc_base": acc["base"]["mean"], "follow_by_task": acc, "n_records": n},
        {"heads_planted_recall": base_heads["recall"], **ffn_figures(work / "base" / "ffn", ground_truth)},
    )


def measure(name: str, path: Path, records: list[dict], followed: np.ndarray, vocab: Path, work: Path) -> None:
    """One model's raw measurements, stored under ``work/name`` (reused when present): greedy follow accuracy,
    instruction and control-span scores of every record, and its heads and FFN runs."""
    from shiftlens.ffn.pipeline import explain_ffn
    from shiftlens.heads import explain_heads

    target = work / name
    if (target / "done.json").exists():
        return
    target.mkdir(parents=True, exist_ok=True)
    loaded = load_model(str(path))
    prompts = [r["prompt"] for r, f in zip(records, followed) if f]
    replies = greedy_responses(loaded.model, loaded.tokenizer, prompts, max_new_tokens=12)
    acc = accuracy([r for r, f in zip(records, followed) if f], replies)
    ids = np.array([r["id"] for r in records])
    np.savez(target / "scores.npz", ids=ids, **span_scores(loaded.model, loaded.tokenizer, records))
    explain_heads(loaded, vocab, target / "heads")
    explain_ffn(loaded, vocab, target / "ffn")
    (target / "done.json").write_text(json.dumps({"accuracy": acc, "n_records": len(records)}), encoding="utf-8")
    print(name, json.dumps(acc), flush=True)


def main() -> None:
    """Run the checks and print (and optionally write) the JSON summary."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", type=Path, help="write the summary here")
    parser.add_argument("--limit", type=int, help="use only the first N prompt records")
    parser.add_argument("--dir", type=Path, default=data_dir(), help="an organism v2 build (default: the shipped one)")
    parser.add_argument("--stride", type=int, default=1, help="measure every N-th prompt only (a faster check)")
    parser.add_argument("--seeds", help="tuning seeds to check (default: every seed of ground_truth.json)")
    parser.add_argument("--workdir", type=Path, help="keep each model's measurements here (reused by reruns)")
    parser.add_argument("--models", help="only measure these models (base, continued, tuned-S), no summary")
    args = parser.parse_args()
    if not (args.dir / "ground_truth.json").is_file():
        parser.error(f"{args.dir} has no ground_truth.json: not an organism v2 build (scripts/build_organism.py)")
    ground_truth = json.loads((args.dir / "ground_truth.json").read_text(encoding="utf-8"))
    with (args.dir / ground_truth["prompts"]).open(encoding="utf-8") as handle:
        all_records = [json.loads(line) for line in handle if line.strip()]
    # records come in pairs (followed, unfollowed) per prompt: keep every N-th prompt's pair
    records = [r for j, r in enumerate(all_records[: args.limit]) if (j // 2) % args.stride == 0]
    seeds = args.seeds.split(",") if args.seeds else list(ground_truth["models"]["tuned"])
    names = {"base": ground_truth["models"]["base"], "continued": ground_truth["models"]["continued"]}
    names.update({f"tuned-{s}": ground_truth["models"]["tuned"][s] for s in seeds})
    followed = np.array([r["rating"] >= FOLLOWED for r in records])
    with tempfile.TemporaryDirectory() as scratch:
        work = args.workdir or Path(scratch)
        for name in args.models.split(",") if args.models else names:
            measure(name, args.dir / names[name], records, followed, args.dir / ground_truth["vocab"], work)
        if args.models:
            return
        result = evaluate(work, names, ground_truth, all_records)
    text = json.dumps(finite(result), indent=2)
    print(text)
    if args.json:
        args.json.write_text(text + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
