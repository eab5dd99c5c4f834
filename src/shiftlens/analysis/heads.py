"""Base vs tuned heads (the paper's Table 3): does tuning add pairs with instruction verbs in more heads?

For each word and layer group, the *fraction* is the share of heads whose knowledge (recurring word pairs,
`shiftlens.heads.knowledge`) has more pairs with the word in tuned than in base, over the heads where the
counts differ. Instruction verbs are compared with control words per group, under a named protocol
(`shiftlens.evidence.PROTOCOLS`; every difference is listed in docs/protocols.md):

- ``sound`` (default): control words are general verbs matched in frequency to the instruction verbs;
  words whose fraction rests on fewer than ``min_heads`` changed heads are left out (and counted); layer
  groups have at least 4 layers (one group below 16 layers); a two-sided word-label permutation test with
  the difference in means and its bootstrap interval; p-values Holm-corrected across groups.
- ``paper``: the authors' analysis: their knowledge counting, every general verb, groups ``layer // 8``,
  mean ± std (ddof 0) and a two-sided Welch t-test.

Both refuse a group where a side has fewer than 5 words or no variance ("not testable", with the reason).
Also reported: per layer, the Jaccard overlap of each head's pairs between base and tuned, optionally beside
its null band (`shiftlens.heads.null`). `analyze_heads` reads two run directories, `compare_pairs` their pair
rows; both return a `HeadsResult` (files: `shiftlens.analysis.heads_output`).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import asdict, dataclass, replace
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from shiftlens.analysis.heads_settings import HeadsAnalysisSettings
from shiftlens.analysis.pairing import check_same_inputs, check_same_shape
from shiftlens.analysis.result import JSON_FILES, AnalysisResult
from shiftlens.evidence import Finding, adjust, check_protocol
from shiftlens.heads.controls import matched_controls
from shiftlens.heads.knowledge import (
    PAIR_COUNTERS,
    HeadKey,
    HeadsAnalysisError,
    Pair,
    WordFraction,
    head_overlap,
    head_pairs,
    knowledge,
    paper_layer_groups,
    sound_layer_groups,
    tuned_more_fraction,
    word_counts,
)
from shiftlens.heads.records import read_pair_rows
from shiftlens.heads.statistics import permutation_test, welch_test
from shiftlens.stats import json_safe, summary_json
from shiftlens.vocabulary import read_word_list

if TYPE_CHECKING:
    from shiftlens.heads.null import NullSettings

INSTRUCTION_VERBS: tuple[str, ...] = (
    "translate", "explain", "summarize", "retrieve", "revise", "generate", "describe", "classify", "create",
    "evaluate", "correct", "develop", "identify", "analyze", "compose", "demonstrate", "interpret", "design",
    "solve", "follow", "clarify", "say", "help", "act", "recommend", "estimate", "edit", "format", "repeat",
    "write", "give", "find", "make", "have", "tell", "output", "predict", "detect",
)  # fmt: skip
DEFAULT_SETTINGS = HeadsAnalysisSettings()


@dataclass(frozen=True)
class HeadsResult(AnalysisResult):
    """`analyze_heads`'s result: Table 3 per layer group, head overlap by layer (and its null), example pairs."""

    JSON_FILE: ClassVar[str] = JSON_FILES["heads"]

    @property
    def groups(self) -> list[dict[str, Any]]:
        """Table 3: one entry per layer group (both sides' summaries, the test, its finding's fields)."""
        return self.data["groups"]

    @property
    def head_overlap_by_layer(self) -> list[dict[str, Any]]:
        """Per layer: the Jaccard overlap of each head's pairs, base vs tuned, and their mean."""
        return self.data["head_overlap_by_layer"]

    def save_files(self, out: Path) -> list[Path]:
        """``table3.csv`` and the head-overlap plot (PNG + SVG)."""
        from shiftlens.analysis.heads_output import write_files

        return write_files(self, out)


def word_list(path: str | Path | None = None) -> list[str]:
    """The words of a word-list file; default: the packaged general verbs (general_verbs.PROVENANCE.md)."""
    if path is None:
        path = Path(str(resources.files("shiftlens.heads") / "assets" / "general_verbs.tsv"))
    return [word for word, _ in read_word_list(path)]


def _side(words: list[str], fractions: dict[str, WordFraction], used: list[str], min_heads: int, ddof: int) -> dict:
    """Summary of one side's used words, with how many of its candidate words were left out and why."""
    no_change = [w for w in words if fractions[w].fraction is None]
    too_few = [w for w in words if fractions[w].fraction is not None and fractions[w].n_changed < min_heads]
    values = np.array([fractions[w].fraction for w in used], dtype=np.float64)
    return {**summary_json(values, ddof), "n_no_change": len(no_change), "n_too_few_heads": len(too_few)}


def _group(
    members: list[HeadKey],
    instruction: list[str],
    general: list[str],
    counts: tuple[dict, dict],
    settings: HeadsAnalysisSettings,
    rng: np.random.Generator,
) -> dict[str, Any]:
    """One layer group: both sides' fractions, the protocol's test, and which words were used."""
    fractions = {w: tuned_more_fraction(w, members, *counts) for w in {*instruction, *general}}
    sound = settings.protocol == "sound"
    min_heads = settings.min_heads if sound else 1
    usable = [w for w in instruction if fractions[w].fraction is not None and fractions[w].n_changed >= min_heads]
    pool = [w for w in general if fractions[w].fraction is not None and fractions[w].n_changed >= min_heads]
    controls = matched_controls(usable, pool, settings.controls_per_word) if sound else pool
    a = np.array([fractions[w].fraction for w in usable], dtype=np.float64)
    b = np.array([fractions[w].fraction for w in controls], dtype=np.float64)
    test = permutation_test(a, b, rng, settings.permutations, settings.resamples) if sound else welch_test(a, b)
    ddof = 1 if sound else 0
    instruction_side = _side(instruction, fractions, usable, min_heads, ddof)
    general_side = _side(general, fractions, controls, min_heads, ddof)
    if sound:
        general_side["n_usable"] = len(pool)
    return {
        "n_heads": len(members),
        "instruction": {**instruction_side, "words": usable},
        "general": {**general_side, **({"words": controls} if sound else {})},
        "test": test,
    }


def _claim(protocol: str, lo: int, hi: int, effect: float | None) -> str:
    other = "frequency-matched control verbs" if protocol == "sound" else "general verbs"
    direction = "fewer" if effect is not None and effect < 0 else "more"
    return f"Tuning adds pairs with instruction verbs in {direction} heads than with {other} (layers {lo}–{hi})"


@dataclass(frozen=True)
class HeadKnowledge:
    """What Table 3 reads from two runs under one protocol: the shared heads, their knowledge and word counts."""

    protocol: str
    heads: list[HeadKey]
    base: dict[HeadKey, set[Pair]]
    tuned: dict[HeadKey, set[Pair]]
    counts: tuple[dict[HeadKey, Counter[str]], dict[HeadKey, Counter[str]]]


def head_knowledge(base_rows: dict[str, np.ndarray], tuned_rows: dict[str, np.ndarray], protocol: str) -> HeadKnowledge:
    """Knowledge and word counts of the heads both runs have, counted as ``protocol`` counts them; runs of
    other architectures (heads per layer) are refused (`shiftlens.analysis.pairing`)."""
    count_pairs = PAIR_COUNTERS[check_protocol(protocol)]
    per_layer = [Counter(int(layer) for layer, _ in rows["heads"]) for rows in (base_rows, tuned_rows)]
    check_same_shape("heads", *per_layer, "heads")
    base_pairs, tuned_pairs = count_pairs(base_rows), count_pairs(tuned_rows)
    heads = sorted(set(base_pairs) & set(tuned_pairs))
    base = {h: knowledge(base_pairs[h]) for h in heads}
    tuned = {h: knowledge(tuned_pairs[h]) for h in heads}
    counts = ({h: word_counts(base[h]) for h in heads}, {h: word_counts(tuned[h]) for h in heads})
    return HeadKnowledge(protocol, heads, base, tuned, counts)


def table3(
    know: HeadKnowledge, instruction: list[str] | tuple[str, ...], general: list[str], settings: HeadsAnalysisSettings
) -> tuple[list[dict[str, Any]], list[Finding]]:
    """Per layer group: both sides' summaries and the protocol's test, and the findings (Holm across groups)."""
    settings = settings.checked()
    if settings.protocol != know.protocol:
        raise HeadsAnalysisError(f"knowledge counted for protocol {know.protocol}, settings ask {settings.protocol}")
    instruction = sorted({w.lower() for w in instruction})
    general = sorted({w.lower() for w in general} - set(instruction))
    if not instruction or not general:
        raise HeadsAnalysisError("the instruction and general word lists must each keep at least one word")
    layers = sorted({layer for layer, _ in know.heads})
    if settings.protocol == "sound":
        try:
            grouping = sound_layer_groups(layers, settings.n_groups)
        except HeadsAnalysisError as exc:
            raise HeadsAnalysisError(f"{exc} (--groups)") from exc
    else:
        grouping = paper_layer_groups(layers)
    groups, findings = [], []
    for index, group in enumerate(grouping):
        members = [h for h in know.heads if h[0] in group]
        rng = np.random.default_rng([settings.seed, index])
        entry = {"layers": [group[0], group[-1]], **_group(members, instruction, general, know.counts, settings, rng)}
        test = entry.pop("test")
        claim = _claim(settings.protocol, group[0], group[-1], test.effect_size)
        findings.append(
            Finding("heads", claim, test.testable, test.reason, test.p_value, effect_size=test.effect_size, ci=test.ci)
        )
        groups.append({**entry, "test": test.test})
    findings = adjust(findings)
    for entry, finding in zip(groups, findings, strict=True):
        entry.update({k: v for k, v in finding.to_json().items() if k not in ("method", "claim")})
    return groups, findings


def compare_pairs(
    base_rows: dict[str, np.ndarray],
    tuned_rows: dict[str, np.ndarray],
    instruction: list[str] | tuple[str, ...] = INSTRUCTION_VERBS,
    general: list[str] | None = None,
    settings: HeadsAnalysisSettings = DEFAULT_SETTINGS,
    n_examples: int = 5,
) -> HeadsResult:
    """Table 3 per layer group, per-layer head overlap and example pairs from two runs' flat pair rows."""
    know = head_knowledge(base_rows, tuned_rows, settings.protocol)
    groups, findings = table3(know, instruction, word_list() if general is None else general, settings)
    instruction_set = {w.lower() for w in instruction}
    return HeadsResult(
        json_safe(
            {
                "protocol": settings.protocol,
                "settings": asdict(settings),
                "groups": groups,
                "head_overlap_by_layer": head_overlap(head_pairs(base_rows), head_pairs(tuned_rows), know.heads),
                "head_overlap_null": None,
                "examples": _examples(know.heads, know.base, know.tuned, instruction_set, n_examples),
                "finding": [f.to_json() for f in findings],
            }
        )
    )


def _examples(heads: list[HeadKey], base: dict, tuned: dict, instruction: set[str], n: int) -> dict[str, list[str]]:
    """Per instruction verb, the knowledge pairs tuned heads gained over the same base heads, most frequent first.

    Ties are broken by the pair's text: `Counter.most_common` would keep set-iteration order, which the hash seed
    changes between runs.
    """
    gained: dict[str, Counter[str]] = {verb: Counter() for verb in sorted(instruction)}
    for h in heads:
        for a, b in tuned[h] - base[h]:
            for verb in {a, b} & instruction:
                gained[verb][f"{a}={b}"] += 1
    return {
        verb: [pair for pair, _ in sorted(c.items(), key=lambda kv: (-kv[1], kv[0]))[:n]]
        for verb, c in gained.items()
        if c
    }


def add_null(result: HeadsResult, null: list[dict[str, Any]], info: dict[str, Any]) -> HeadsResult:
    """The result with ``head_overlap_null`` (observed beside each layer's band) and the overlap finding."""
    from shiftlens.heads.null import overlap_finding

    observed = {entry["layer"]: entry["mean"] for entry in result["head_overlap_by_layer"]}
    bands = [{**entry, "observed": observed.get(entry["layer"])} for entry in null]
    finding = adjust([overlap_finding(result["head_overlap_by_layer"], null)])[0]
    findings = [*result["finding"], finding.to_json()]
    return HeadsResult(json_safe({**result.data, "head_overlap_null": bands, "null": info, "finding": findings}))


def analyze_heads(
    base_dir: str | Path,
    tuned_dir: str | Path,
    instruction: list[str] | tuple[str, ...] = INSTRUCTION_VERBS,
    general: list[str] | None = None,
    n_groups: int | None = None,
    settings: HeadsAnalysisSettings = DEFAULT_SETTINGS,
    null: NullSettings | None = None,
) -> HeadsResult:
    """Table 3 of two `shiftlens heads` output directories (base, tuned); see the module doc.

    ``n_groups`` overrides ``settings.n_groups``. ``null`` adds the head-overlap null band, which reads
    both models' weights (by default those the runs recorded).
    """
    if n_groups is not None:
        settings = replace(settings, n_groups=n_groups)
    check_same_inputs(base_dir, tuned_dir, "heads")
    result = compare_pairs(read_pair_rows(base_dir), read_pair_rows(tuned_dir), instruction, general, settings)
    if null is None:
        return result
    from shiftlens.heads.null import PERTURBED, overlap_null

    info = {"draws": null.draws, "seed": null.seed, "perturbed": PERTURBED}
    return add_null(result, overlap_null(base_dir, tuned_dir, null), info)
