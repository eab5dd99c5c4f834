"""Base vs tuned heads (the paper's Table 3): do heads gain pairs with instruction verbs?

A head's knowledge is the set of order-free, lower-cased word pairs found in more than one of its
dimensions. For each word and layer group (quarters of the depth), we take the heads whose count of
knowledge pairs containing the word differs between base and tuned (ties dropped) and compute the
fraction where tuned has more. Instruction verbs and general verbs are then compared by mean ± std
of that fraction and a one-sided Welch t-test (alternative: instruction verbs have the larger mean).
Also reported: per layer, the Jaccard overlap of each head's pairs between base and tuned.
"""

from __future__ import annotations

import math
from collections import Counter
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from shiftlens.heads.records import read_pair_rows
from shiftlens.stats import summary, welch_less
from shiftlens.vocabulary import read_word_list

INSTRUCTION_VERBS: tuple[str, ...] = (
    "translate", "explain", "summarize", "retrieve", "revise", "generate", "describe", "classify", "create",
    "evaluate", "correct", "develop", "identify", "analyze", "compose", "demonstrate", "interpret", "design",
    "solve", "follow", "clarify", "say", "help", "act", "recommend", "estimate", "edit", "format", "repeat",
    "write", "give", "find", "make", "have", "tell", "output", "predict", "detect",
)  # fmt: skip

Pair = tuple[str, str]
HeadKey = tuple[int, int]


def word_list(path: str | Path | None = None) -> list[str]:
    """The words of a word-list file; default: the packaged general verbs (general_verbs.PROVENANCE.md)."""
    if path is None:
        path = Path(str(resources.files("shiftlens") / "data" / "general_verbs.tsv"))
    return [word for word, _ in read_word_list(path)]


def head_pairs(rows: dict[str, np.ndarray]) -> tuple[dict[HeadKey, dict[Pair, int]], list[HeadKey]]:
    """Per (layer, head): each order-free lower-cased pair and the number of dimensions it occurs in."""
    query = pc.utf8_lower(pa.array(rows["query"], pa.string()))
    key = pc.utf8_lower(pa.array(rows["key"], pa.string()))
    first = pc.less(query, key)
    table = pa.table(
        {
            "layer": rows["layer"],
            "head": rows["head"],
            "a": pc.if_else(first, query, key),
            "b": pc.if_else(first, key, query),
            "dim": rows["dim"],
        }
    ).filter(pc.not_equal(query, key))
    counted = table.group_by(["layer", "head", "a", "b"]).aggregate([("dim", "count_distinct")]).to_pydict()
    heads = [(int(layer), int(head)) for layer, head in rows["heads"]]
    pairs: dict[HeadKey, dict[Pair, int]] = {h: {} for h in heads}
    columns = [counted[name] for name in ("layer", "head", "a", "b", "dim_count_distinct")]
    for layer, head, a, b, n_dims in zip(*columns):
        pairs.setdefault((layer, head), {})[(a, b)] = n_dims
    return pairs, heads


def knowledge(pairs: dict[Pair, int]) -> set[Pair]:
    """A head's knowledge: the pairs found in more than one of its dimensions."""
    return {pair for pair, n_dims in pairs.items() if n_dims > 1}


def word_counts(pairs: set[Pair]) -> Counter[str]:
    """How many pairs of a set contain each word."""
    return Counter(word for pair in pairs for word in pair)


def layer_groups(layers: list[int], n_groups: int = 4) -> list[list[int]]:
    """Split sorted layers into ``n_groups`` consecutive groups of near-equal size (quarters of the depth)."""
    return [list(map(int, g)) for g in np.array_split(np.array(sorted(layers)), n_groups) if len(g)]


def tuned_more_fraction(word: str, heads: list[HeadKey], base: dict, tuned: dict) -> float | None:
    """Fraction of ``heads`` where tuned knowledge has more pairs with ``word`` than base; ties dropped."""
    more = differ = 0
    for head in heads:
        b, t = base[head][word], tuned[head][word]
        if b != t:
            differ += 1
            more += t > b
    return more / differ if differ else None


def _jsonable(value: Any) -> Any:
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_jsonable(v) for v in value]
    return value


def compare_pairs(
    base_rows: dict[str, np.ndarray],
    tuned_rows: dict[str, np.ndarray],
    instruction: list[str] | tuple[str, ...] = INSTRUCTION_VERBS,
    general: list[str] | None = None,
    n_groups: int = 4,
    n_examples: int = 5,
) -> dict[str, Any]:
    """Table 3 statistics, per-layer head overlap and example pairs from two runs' flat pair rows."""
    general = word_list() if general is None else general
    instruction_set = {w.lower() for w in instruction}
    general = [w.lower() for w in general if w.lower() not in instruction_set]
    base_pairs, base_heads = head_pairs(base_rows)
    tuned_pairs, tuned_heads = head_pairs(tuned_rows)
    heads = sorted(set(base_heads) & set(tuned_heads))
    base_know = {h: knowledge(base_pairs[h]) for h in heads}
    tuned_know = {h: knowledge(tuned_pairs[h]) for h in heads}
    base_counts = {h: word_counts(base_know[h]) for h in heads}
    tuned_counts = {h: word_counts(tuned_know[h]) for h in heads}
    groups = []
    for group in layer_groups(sorted({layer for layer, _ in heads}), n_groups):
        members = [h for h in heads if h[0] in group]
        fractions = {}
        for name, words in (("instruction", sorted(instruction_set)), ("general", general)):
            values = [tuned_more_fraction(w, members, base_counts, tuned_counts) for w in words]
            fractions[name] = [v for v in values if v is not None]
        groups.append(
            {
                "layers": [group[0], group[-1]],
                "instruction": summary(fractions["instruction"]),
                "general": summary(fractions["general"]),
                "p_value": welch_less(fractions["general"], fractions["instruction"]),
            }
        )
    overlap = []
    for layer in sorted({layer for layer, _ in heads}):
        values = []
        for h in (h for h in heads if h[0] == layer):
            union = set(base_pairs[h]) | set(tuned_pairs[h])
            values.append(len(set(base_pairs[h]) & set(tuned_pairs[h])) / len(union) if union else math.nan)
        finite = [v for v in values if not math.isnan(v)]
        overlap.append({"layer": layer, "mean": float(np.mean(finite)) if finite else math.nan, "heads": values})
    gained: dict[str, Counter[str]] = {verb: Counter() for verb in sorted(instruction_set)}
    for h in heads:
        for a, b in tuned_know[h] - base_know[h]:
            for verb in {a, b} & instruction_set:
                gained[verb][f"{a}={b}"] += 1
    examples = {verb: [pair for pair, _ in c.most_common(n_examples)] for verb, c in gained.items() if c}
    return _jsonable({"groups": groups, "head_overlap_by_layer": overlap, "examples": examples})


def analyze_heads(
    base_dir: str | Path,
    tuned_dir: str | Path,
    instruction: list[str] | tuple[str, ...] = INSTRUCTION_VERBS,
    general: list[str] | None = None,
    n_groups: int = 4,
) -> dict[str, Any]:
    """Table 3 of two `shiftlens heads` output directories (base model, tuned model); see module doc."""
    return compare_pairs(read_pair_rows(base_dir), read_pair_rows(tuned_dir), instruction, general, n_groups)


TABLE_COLUMNS = (
    "layers",
    "instruction mean",
    "instruction std",
    "n",
    "general mean",
    "general std",
    "n",
    "p",
)


def table_rows(result: dict[str, Any]) -> list[list[Any]]:
    """Table 3 rows of an `analyze_heads` result (None for undefined statistics)."""
    return [
        [
            f"{g['layers'][0]}-{g['layers'][1]}",
            g["instruction"]["mean"],
            g["instruction"]["std"],
            g["instruction"]["n"],
            g["general"]["mean"],
            g["general"]["std"],
            g["general"]["n"],
            g["p_value"],
        ]
        for g in result["groups"]
    ]


def write_report(result: dict[str, Any], out: str | Path) -> list[Path]:
    """Write ``table3.csv``, ``heads_analysis.json`` and the head-overlap plot (PNG + SVG) under ``out``."""
    from shiftlens.plots import BASE_COLOR, save_figure, subplots
    from shiftlens.storage import atomic_write_json
    from shiftlens.tables import write_csv

    out = Path(out)
    paths = [write_csv(out / "table3.csv", TABLE_COLUMNS, table_rows(result))]
    atomic_write_json(out / "heads_analysis.json", result)
    fig, (axis,) = subplots(1, width=6.0)
    layers = [entry["layer"] for entry in result["head_overlap_by_layer"]]
    for entry in result["head_overlap_by_layer"]:
        values = [v for v in entry["heads"] if v is not None]
        axis.scatter([entry["layer"]] * len(values), values, s=8, color=BASE_COLOR, alpha=0.4)
    axis.plot(layers, [e["mean"] for e in result["head_overlap_by_layer"]], color="black", label="mean over heads")
    axis.set(xlabel="layer", ylabel="Jaccard overlap of pairs (base vs tuned)", ylim=(0, 1))
    axis.legend()
    return paths + [out / "heads_analysis.json"] + save_figure(fig, out / "head_overlap")
