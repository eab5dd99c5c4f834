"""Instruction recognition (paper Tables 1–2, the position profile, and the nulls) from two attribution runs.

Per example: importance density of each prompt token (`shiftlens.density`), the instruction score over
the instruction mask, and a 10-bin position profile. Then, per group, under a protocol
(`shiftlens.evidence.PROTOCOLS`; every difference is listed in docs/protocols.md):

* **Table 1** (tuned run): followed (rating ≥ 2) vs unfollowed (0 < rating < 2) scores, ROC-AUC of the
  score predicting "followed", Cohen's d.
* **Table 2**: base vs tuned scores; the examples present in both runs are paired.

``"paper"`` follows the authors' code: Table 1 leaves out responses shorter than `min_response_tokens`,
Table 2 keeps every example (an empty response scores 0), standard deviations with ddof 0, one-sided
Welch tests (Table 1: unfollowed < followed; Table 2: base < tuned; the paired t-test beside it).
``"sound"`` leaves short responses out of both tables, uses ddof 1, two-sided permutation tests with
bootstrap intervals of the effect sizes, and puts every score beside its nulls
(`shiftlens.analysis.attribution_nulls`): Table 1's finding compares the instruction score beyond that
of length-matched control spans between followed and unfollowed responses, Table 2's is the tuned − base
gain of the instruction score beyond its control spans' (paired over examples); next to them the
instruction-minus-rest contrast and the gain by where the instruction sits (position-matched controls).
The raw scores' tests stay in the rows (paired first). In both, a comparison with
fewer than 5 values on a side or no variance is "not testable" (`shiftlens.evidence.untestable_reason`),
and the findings are Holm-adjusted together (`shiftlens.evidence.adjust`).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from shiftlens import stats
from shiftlens.analysis import attribution_nulls as nulls
from shiftlens.attribution.records import ExampleAttribution
from shiftlens.density import DensityParams, importance_density, instruction_score
from shiftlens.evidence import DEFAULT_PROTOCOL, PROTOCOLS, Finding, adjust, check_protocol
from shiftlens.examples import group_of

KNOWN_GROUPS = ("self_instruct", "lima", "mt_bench")
ALL = "all"
BINS = 10
DEFAULT_PARAMS = DensityParams()
METHOD = "attribution"
TESTS = {
    "paper": {
        "table1": "Welch t, one-sided (unfollowed < followed)",
        "table2": "Welch t, one-sided (base < tuned)",
        "table2_paired": "paired t, one-sided (base < tuned)",
    },
    "sound": {
        "table1": "permutation of labels, two-sided",
        "table1_control": "permutation of labels of (instruction score − mean score of its controls), two-sided",
        "table2": "placement randomization: instruction gain − mean gain of its rotations, two-sided",
        "strata": "placement randomization within the instruction's third of the prompt, two-sided",
        "table2_paired": "sign-flip permutation, two-sided",
        "table2_unpaired": "Welch t, two-sided",
        "contrast": "sign-flip permutation, two-sided",
    },
}


@dataclass(frozen=True)
class ExampleScore:
    """One example's density, instruction mask and score, position profile (NaN for empty bins) and labels."""

    id: str
    group: str
    score: float
    profile: np.ndarray
    n_response: int
    rating: float | None
    density: np.ndarray
    mask: np.ndarray


def position_profile(density: np.ndarray, bins: int = BINS) -> np.ndarray:
    """Mean max-normalised density per relative-position bin; token n of N falls in bin ⌊bins·(n+½)/N⌋.

    Bins with no token (prompts shorter than `bins`) are NaN; an all-zero density gives all NaN.
    """
    density = np.asarray(density, dtype=np.float64)
    n = density.size
    peak = density.max(initial=0.0)
    if n == 0 or peak <= 0:
        return np.full(bins, np.nan)
    which = np.floor(bins * (np.arange(n) + 0.5) / n).astype(int)
    sums = np.bincount(which, weights=density / peak, minlength=bins)
    counts = np.bincount(which, minlength=bins)
    return np.divide(sums, counts, out=np.full(bins, np.nan), where=counts > 0)


def score_example(
    record: ExampleAttribution,
    params: DensityParams = DEFAULT_PARAMS,
    rating: float | None = None,
    mask: np.ndarray | None = None,
) -> ExampleScore:
    """Density, instruction score and position profile of one record (`rating`/`mask` override the record's)."""
    density = importance_density(record.attribution, params)
    mask = np.asarray(record.instruction_mask if mask is None else mask, dtype=bool)
    return ExampleScore(
        id=record.id,
        group=record.group or group_of(record.id),
        score=instruction_score(density, mask),
        profile=position_profile(density),
        n_response=len(record.response_tokens),
        rating=record.rating if rating is None else rating,
        density=density,
        mask=mask,
    )


def _finite(value: float | None) -> float | None:
    return None if value is None or not math.isfinite(value) else float(value)


def _summary(values: Sequence[float], ddof: int) -> dict[str, Any]:
    s = stats.summary(values, ddof=ddof)
    return {"mean": _finite(s["mean"]), "std": _finite(s["std"]), "n": s["n"]}


def _mean_profile(items: Iterable[ExampleScore]) -> list[float | None]:
    rows = [item.profile for item in items if not np.all(np.isnan(item.profile))]
    if not rows:
        return [None] * BINS
    stacked = np.vstack(rows)
    counts = (~np.isnan(stacked)).sum(axis=0)
    sums = np.nansum(stacked, axis=0)
    return [_finite(s / c) if c else None for s, c in zip(sums, counts)]


def _groups(*collections: Iterable[ExampleScore]) -> list[str]:
    present = {item.group for items in collections for item in items}
    return [g for g in KNOWN_GROUPS if g in present] + sorted(present - set(KNOWN_GROUPS)) + [ALL]


def _in_group(items: Iterable[Any], group: str) -> list[Any]:
    return [item for item in items if group == ALL or item.group == group]


def is_followed(rating: float | None) -> bool | None:
    """True for rating ≥ 2, False for 0 < rating < 2, None (excluded) for missing or ≤ 0 ratings."""
    if rating is None or not math.isfinite(rating) or rating <= 0:
        return None
    return rating >= 2


def _one_sided(method: str, claim: str, test: Callable[..., float], a: Sequence[float], b: Sequence[float], **kw):
    """The paper protocol's guarded one-sided t-test (no interval), effect Cohen's d or d_z."""
    effect = stats.paired_dz_rows if kw.get("paired") else stats.cohens_d_rows
    return stats.guarded_finding(method, claim, test, a, b, effect=effect, **kw)


def _test_fields(finding: Finding, key: str = "p_value") -> dict[str, Any]:
    """A finding's p-value and reason under a row's key names (None where not testable)."""
    prefix = key.removesuffix("p_value")
    return {key: _finite(finding.p_value), f"{prefix}reason": finding.reason}


def _interval(finding: Finding) -> list[float | None] | None:
    return None if finding.ci is None else [_finite(v) for v in finding.ci]


def _table1_row(items: list[ExampleScore], group: str, protocol: str, ddof: int, seed: int):
    labelled = [(item.score, is_followed(item.rating)) for item in items]
    labelled = [(score, label) for score, label in labelled if label is not None]
    followed = [score for score, label in labelled if label]
    unfollowed = [score for score, label in labelled if not label]
    row = {
        "followed": _summary(followed, ddof),
        "unfollowed": _summary(unfollowed, ddof),
        "test": TESTS[protocol]["table1"],
        "auc": _finite(stats.roc_auc([s for s, _ in labelled], [lab for _, lab in labelled])),
        "effect_size": _finite(stats.cohens_d(unfollowed, followed)),
    }
    if protocol == "paper":
        claim = f"{group}: the tuned model's instruction score is higher for followed than for unfollowed responses"
        finding = _one_sided(METHOD, claim, stats.welch_less, unfollowed, followed)
        row.update(_test_fields(finding))
        return row, finding
    # sound: the finding is on the score beyond the controls' (a random span's score differs by group too)
    excess = [
        (nulls.control_excess(i.density, i.mask), is_followed(i.rating)) for i in items if nulls.has_control(i.mask)
    ]
    excess_followed = [e for e, label in excess if label]
    excess_unfollowed = [e for e, label in excess if label is False]
    finding = _directed(
        stats.two_sample_finding(
            METHOD,
            f"{group}: the tuned model's instruction score beyond length-matched control spans is {{higher|lower}} "
            "for followed than for unfollowed responses",
            excess_unfollowed,
            excess_followed,
            seed=seed,
        )
    )
    raw = stats.guarded_finding(
        METHOD, "raw", lambda a, b: stats.label_permutation_p(a, b, seed=seed), unfollowed, followed
    )
    row.update(
        _test_fields(raw),
        control={
            "test": TESTS["sound"]["table1_control"],
            "followed": _summary(excess_followed, 1),
            "unfollowed": _summary(excess_unfollowed, 1),
            **_test_fields(finding),
            "effect_size": _finite(finding.effect_size),
            "ci": _interval(finding),
        },
    )
    return row, finding


def _pairs(base: list[ExampleScore], tuned: list[ExampleScore]) -> list[tuple[ExampleScore, ExampleScore]]:
    tuned_by_id = {t.id: t for t in tuned}
    return [(b, tuned_by_id[b.id]) for b in base if b.id in tuned_by_id]


def _table2_paper(base: list[ExampleScore], tuned: list[ExampleScore], group: str):
    base_scores, tuned_scores = [b.score for b in base], [t.score for t in tuned]
    pairs = _pairs(base, tuned)
    paired_base, paired_tuned = [b.score for b, _ in pairs], [t.score for _, t in pairs]
    claim = f"{group}: the tuned model's instruction score exceeds the base model's"
    finding = _one_sided(METHOD, claim, stats.welch_less, base_scores, tuned_scores)
    paired = _one_sided(METHOD, claim, stats.paired_less, paired_base, paired_tuned, paired=True)
    row = {
        "base": _summary(base_scores, 0),
        "tuned": _summary(tuned_scores, 0),
        "test": TESTS["paper"]["table2"],
        **_test_fields(finding),
        "paired_test": TESTS["paper"]["table2_paired"],
        **_test_fields(paired, "paired_p_value"),
        "n_paired": len(pairs),
        "effect_size": _finite(stats.cohens_d(base_scores, tuned_scores)),
        "paired_effect_size": _finite(stats.paired_cohens_dz(paired_base, paired_tuned)),
    }
    return row, finding


def _table2_sound(
    base: list[ExampleScore], tuned: list[ExampleScore], null: list[nulls.NullStats], group: str, seed: int
):
    base_scores, tuned_scores = [b.score for b in base], [t.score for t in tuned]
    pairs = _pairs(base, tuned)
    paired_base, paired_tuned = [b.score for b, _ in pairs], [t.score for _, t in pairs]
    finding = _placement_finding(
        f"{group}: tuning raises the attribution score of the instruction {{more|less}} than that of "
        "length-matched control spans in the same prompt",
        [n.gains for n in null],
        seed,
    )
    paired = stats.paired_finding(METHOD, "paired", paired_base, paired_tuned, seed=seed)
    unpaired = stats.guarded_finding(METHOD, "unpaired", stats.welch_two_sided, base_scores, tuned_scores)
    row = {
        "base": _summary(base_scores, 1),
        "tuned": _summary(tuned_scores, 1),
        "paired_test": TESTS["sound"]["table2_paired"],
        **_test_fields(paired, "paired_p_value"),
        "n_paired": len(pairs),
        "paired_effect_size": _finite(paired.effect_size),
        "paired_ci": _interval(paired),
        "test": TESTS["sound"]["table2_unpaired"],
        **_test_fields(unpaired),
        "effect_size": _finite(stats.cohens_d(base_scores, tuned_scores)),
        "control": {
            "test": TESTS["sound"]["table2"],
            "n": len(null),
            "instruction_gain": _summary([n.gain for n in null], 1),
            "control_gain": _summary([n.control_gain for n in null], 1),
            **_test_fields(finding),
            "effect_size": _finite(finding.effect_size),
            "ci": _interval(finding),
        },
    }
    return row, finding


def _directed(finding: Finding) -> Finding:
    """A two-sided test's claim worded by the observed direction: ``{up|down}`` in it is chosen by the effect's sign."""
    up, down = finding.claim.split("{", 1)[1].split("}", 1)[0].split("|")
    word = down if finding.effect_size is not None and finding.effect_size < 0 else up
    return replace(finding, claim=finding.claim.replace(f"{{{up}|{down}}}", word))


def _placement_finding(claim: str, sets: list[np.ndarray], seed: int) -> Finding:
    """Guarded placement-randomization test (`attribution_nulls.placement_p`) of the instruction's gain over
    its controls' (``sets``: each example's placement gains, the instruction first); d_z with a bootstrap CI."""
    gains, control_gains = [g[0] for g in sets], [g[1:].mean() for g in sets]
    return _directed(
        stats.guarded_finding(
            METHOD,
            claim,
            lambda _a, _b: nulls.placement_p(sets, seed=seed),
            control_gains,
            gains,
            paired=True,
            effect=stats.paired_dz_rows,
            ci=True,
            seed=seed,
        )
    )


def _null_stats(
    base: list[ExampleScore], tuned: list[ExampleScore]
) -> tuple[list[nulls.NullStats], dict[str, list[str]]]:
    """Null statistics of every paired example that has a control span, and the ids left out (with why)."""
    out, left_out = [], {"no_control_span": [], "tokens_differ": []}
    for b, t in _pairs(base, tuned):
        if b.mask.shape != t.mask.shape or not np.array_equal(b.mask, t.mask):
            left_out["tokens_differ"].append(b.id)
        elif not nulls.has_control(b.mask):
            left_out["no_control_span"].append(b.id)
        else:
            out.append(nulls.null_stats(b.id, b.group, (b.density, t.density), b.mask))
    return out, {k: sorted(v) for k, v in left_out.items()}


def _nulls_section(null: list[nulls.NullStats], left_out: dict[str, list[str]], seed: int):
    """The contrast and the position strata (all groups together), with their findings."""
    findings = []
    contrast = _directed(
        stats.paired_finding(
            METHOD,
            "all: tuning {raises|lowers} the attribution on instruction tokens relative to the other prompt tokens "
            "(instruction-minus-rest contrast)",
            [n.contrast[0] for n in null],
            [n.contrast[1] for n in null],
            seed=seed,
        )
    )
    findings.append((("contrast",), contrast))
    strata = {}
    for stratum in nulls.STRATA:
        inside = [n for n in null if n.position == stratum]
        sets = [g for g in (n.matched() for n in inside) if g.size > 1]
        finding = _placement_finding(
            f"instruction in the {stratum} third of the prompt: tuning raises the attribution score of the "
            "instruction {more|less} than that of length-matched control spans in the same third",
            sets,
            seed,
        )
        findings.append((("strata", stratum), finding))
        strata[stratum] = {
            "n": len(sets),
            "n_without_matched_control": len(inside) - len(sets),
            "instruction_gain": _summary([g[0] for g in sets], 1),
            "control_gain": _summary([g[1:].mean() for g in sets], 1),
            "anywhere_control_gain": _summary([n.control_gain for n in inside if n.matched().size > 1], 1),
            **_test_fields(finding),
            "effect_size": _finite(finding.effect_size),
            "ci": _interval(finding),
        }
    section = {
        "test": TESTS["sound"]["table2"],
        "seed": seed,
        "n": len(null),
        "left_out": left_out,
        "contrast": {
            "test": TESTS["sound"]["contrast"],
            "base": _summary([n.contrast[0] for n in null], 1),
            "tuned": _summary([n.contrast[1] for n in null], 1),
            **_test_fields(contrast),
            "effect_size": _finite(contrast.effect_size),
            "ci": _interval(contrast),
        },
        "strata_test": TESTS["sound"]["strata"],
        "strata": strata,
    }
    return section, findings


def analyze_instructions(
    base_records: Sequence[ExampleAttribution],
    tuned_records: Sequence[ExampleAttribution],
    ratings: dict[str, float] | None = None,
    *,
    params: DensityParams = DEFAULT_PARAMS,
    min_response_tokens: int = 5,
    protocol: str = DEFAULT_PROTOCOL,
    seed: int = 0,
    masks: dict[str, np.ndarray] | None = None,
) -> dict[str, Any]:
    """Tables 1–2, the position profile and (sound protocol) the nulls of a base and a tuned run, JSON-safe.

    `ratings` (example id → rating of the tuned response) override the tuned records' own ratings;
    `masks` (example id → instruction mask) override both records' masks (used by the calibration).
    Keys: protocol, table1, table2, nulls (sound only), finding (Holm-adjusted `Finding.to_json()` list),
    position_profile, position_profile_by_group, scores (one row per example id), excluded, params.
    """
    check_protocol(protocol)
    ratings, masks = ratings or {}, masks or {}
    base_all = [score_example(r, params, mask=masks.get(r.id)) for r in base_records]
    tuned_all = [score_example(r, params, ratings.get(r.id), masks.get(r.id)) for r in tuned_records]
    short = {
        name: sorted(item.id for item in items if item.n_response < min_response_tokens)
        for name, items in (("base", base_all), ("tuned", tuned_all))
    }
    base = [item for item in base_all if item.n_response >= min_response_tokens]
    tuned = [item for item in tuned_all if item.n_response >= min_response_tokens]
    ddof = 0 if protocol == "paper" else 1
    groups = _groups(base_all, tuned_all)
    located: list[tuple[tuple[str, ...], Finding]] = []
    table1, table2 = {}, {}
    for g in groups:
        if _in_group(tuned, g):
            table1[g], finding = _table1_row(_in_group(tuned, g), g, protocol, ddof, seed)
            located.append((("table1", g) if protocol == "paper" else ("table1", g, "control"), finding))
    result: dict[str, Any] = {"protocol": protocol, "protocol_description": PROTOCOLS[protocol]}
    if protocol == "paper":
        for g in groups:
            table2[g], finding = _table2_paper(_in_group(base_all, g), _in_group(tuned_all, g), g)
            located.append((("table2", g), finding))
    else:
        null, left_out = _null_stats(base, tuned)
        for g in groups:
            table2[g], finding = _table2_sound(_in_group(base, g), _in_group(tuned, g), _in_group(null, g), g, seed)
            located.append((("table2", g, "control"), finding))
        result["nulls"], null_findings = _nulls_section(null, left_out, seed)
        located += [(("nulls", *path), f) for path, f in null_findings]
    adjusted = adjust([f for _, f in located])
    tables = {"table1": table1, "table2": table2, "nulls": result.get("nulls")}
    for (path, _), finding in zip(located, adjusted):
        target = tables[path[0]]
        for key in path[1:]:
            target = target[key]
        target["p_adjusted"] = _finite(finding.p_adjusted)
        target["significant"] = finding.significant
    profiles = {
        g: {"base": _mean_profile(_in_group(base, g)), "tuned": _mean_profile(_in_group(tuned, g))} for g in groups
    }
    result.update(
        table1=table1,
        table2=table2,
        finding=[f.to_json() for f in adjusted],
        position_profile=profiles[ALL],
        position_profile_by_group={g: p for g, p in profiles.items() if g != ALL},
        scores=_score_rows(base if protocol == "sound" else base_all, tuned if protocol == "sound" else tuned_all),
        excluded={
            "min_response_tokens": min_response_tokens,
            "short_response": short,
            "short_response_in_table2": protocol == "paper",
            "unrated": sorted(item.id for item in tuned if is_followed(item.rating) is None),
        },
        params={
            "levels": params.levels,
            "threshold": params.threshold,
            "p": params.p,
            "bins": BINS,
            "ddof": ddof,
            "seed": seed,
        },
    )
    return result


def _score_rows(base: list[ExampleScore], tuned: list[ExampleScore]) -> list[dict[str, Any]]:
    rows: dict[str, dict[str, Any]] = {}
    for name, items in (("base", base), ("tuned", tuned)):
        for item in items:
            row = rows.setdefault(item.id, {"id": item.id, "group": item.group, "rating": None, "base": None})
            row[name] = item.score
            if name == "tuned":
                row["rating"] = _finite(item.rating)
    for row in rows.values():
        row.setdefault("tuned", None)
    return sorted(rows.values(), key=lambda row: (row["group"], row["id"]))
