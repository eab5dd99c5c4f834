"""False-positive rate of the heads comparison (Table 3) on the organism pair, with random word sets.

The heads method runs once on organism-base and organism-tuned (the organism's word list, co-occurrence
``ppmi:wordnet``). Then ``--draws`` random word sets of the instruction verbs' size replace the instruction
verbs and each analysis is rerun on them; a draw *declares a finding* when one of its layer groups is
significant (Holm-adjusted p < 0.05). Random words carry no planted signal, so the declared rate is the
false-positive rate (nominal 5 %). Analyses:

- ``sound`` and ``paper``: the two protocols of `shiftlens.analysis.heads`;
- ``before``: the analysis as it was before issue 13 (quarters of the depth, every general verb, one-sided
  Welch without the degenerate-data guard, the smallest group p Bonferroni-corrected as the report did).

Word pools: ``vocab`` (any word of the list but the instruction verbs, as a user's word set would be) and
``usable`` (only words whose fraction rests on at least ``min_heads`` changed heads, so that the sound test
is run in every draw rather than refused). With ``--null-draws N`` the head-overlap null band is printed too.

Run: ``.venv/bin/python bench/calibrate_heads.py [--draws 60] [--workdir DIR] [--json PATH]``.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import numpy as np

from shiftlens.analysis.heads import HeadsAnalysisSettings, analyze_heads, head_knowledge, table3, word_list
from shiftlens.evidence import ALPHA
from shiftlens.heads import explain_heads
from shiftlens.heads.knowledge import head_overlap, head_pairs, tuned_more_fraction
from shiftlens.heads.null import NullSettings
from shiftlens.heads.records import read_pair_rows
from shiftlens.organism import instruction_verbs, vocab_path
from shiftlens.stats import welch_less
from shiftlens.vocabulary import read_word_list

VOCAB = vocab_path()


def fractions(words: list[str], heads: list, know) -> list[float | None]:
    """Each word's fraction of changed heads where tuned has more pairs with it."""
    return [tuned_more_fraction(w, heads, *know.counts).fraction for w in words]


def changed_heads(word: str, know) -> int:
    """Over all heads: how many changed their number of pairs with the word."""
    return tuned_more_fraction(word, know.heads, *know.counts).n_changed


def before_declares(know, words: list[str], general: list[str]) -> bool:
    """The pre-issue-13 verdict: any quarter's one-sided Welch p, times the number of tested groups, < 0.05."""
    layers = sorted({layer for layer, _ in know.heads})
    p_values = []
    for group in np.array_split(np.array(layers), 4):
        members = [h for h in know.heads if h[0] in set(group.tolist())]
        sides = [words, [g for g in general if g not in set(words)]]
        instruction, controls = ([f for f in fractions(side, members, know) if f is not None] for side in sides)
        p = welch_less(controls, instruction)
        if not np.isnan(p):
            p_values.append(p)
    return bool(p_values) and min(p_values) * len(p_values) < ALPHA


def main() -> None:
    """Explain both organism models once, then count declared findings over random word sets."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--draws", type=int, default=60)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workdir", type=Path, help="keep the heads runs here (default: a temporary directory)")
    parser.add_argument("--permutations", type=int, default=HeadsAnalysisSettings().permutations)
    parser.add_argument("--null-draws", type=int, default=0, help="also print the head-overlap null band")
    parser.add_argument("--json", type=Path, help="write the rates as JSON here")
    args = parser.parse_args()
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="calibrate-heads-"))
    for role in ("base", "tuned"):
        explain_heads(f"organism-{role}", VOCAB, workdir / role)
    base_rows, tuned_rows = read_pair_rows(workdir / "base"), read_pair_rows(workdir / "tuned")
    verbs = instruction_verbs()
    general = word_list()
    sound = HeadsAnalysisSettings(permutations=args.permutations)
    know = {protocol: head_knowledge(base_rows, tuned_rows, protocol) for protocol in ("sound", "paper")}
    vocabulary = [w.lower() for w, _ in read_word_list(VOCAB) if w.lower() not in set(verbs)]
    usable = [w for w in sorted(set(vocabulary)) if changed_heads(w, know["sound"]) >= sound.min_heads]
    report: dict = {"draws": args.draws, "set_size": len(verbs), "pools": {}}
    print(f"{args.draws} random sets of {len(verbs)} words; declared = some group with Holm p < {ALPHA}")
    for pool_name, pool in (("vocab", sorted(set(vocabulary))), ("usable", usable)):
        rng = np.random.default_rng([args.seed, len(pool)])
        counts = {name: {"testable": 0, "declared": 0} for name in ("sound", "paper", "before")}
        for draw in range(args.draws):
            words = [str(w) for w in rng.choice(pool, size=len(verbs), replace=False)]
            for protocol in ("sound", "paper"):
                settings = HeadsAnalysisSettings(protocol=protocol, permutations=args.permutations, seed=draw)
                _, findings = table3(know[protocol], words, general, settings)
                counts[protocol]["testable"] += any(f.testable for f in findings)
                counts[protocol]["declared"] += any(f.significant for f in findings)
            declared = before_declares(know["sound"], words, general)
            counts["before"]["testable"] += 1
            counts["before"]["declared"] += declared
        report["pools"][pool_name] = {"size": len(pool), **counts}
        for name, c in counts.items():
            print(
                f"pool {pool_name:6s} ({len(pool)} words)  {name:6s}: testable in {c['testable']:3d}, "
                f"declared {c['declared']:3d} of {args.draws} = {c['declared'] / args.draws:.1%}"
            )
    observed = head_overlap(head_pairs(base_rows), head_pairs(tuned_rows), know["sound"].heads)
    report["observed_overlap"] = [{"layer": e["layer"], "mean": e["mean"]} for e in observed]
    if args.null_draws:
        null = NullSettings(args.null_draws, args.seed, vocab=str(VOCAB))
        result = analyze_heads(workdir / "base", workdir / "tuned", verbs, settings=sound, null=null)
        report["head_overlap_null"] = result["head_overlap_null"]
        report["overlap_finding"] = result["finding"][-1]
        for band in result["head_overlap_null"]:
            print(
                f"layer {band['layer']}: observed overlap {band['observed']:.3f}; null mean {band['mean']:.3f}, "
                f"5–95 % [{band['q05']:.3f}, {band['q95']:.3f}], min–max [{band['min']:.3f}, {band['max']:.3f}]"
            )
        print("overlap finding:", json.dumps(report["overlap_finding"]))
    if args.json:
        args.json.write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
