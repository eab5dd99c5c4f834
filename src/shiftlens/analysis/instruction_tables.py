"""The rows of Tables 1–2 and the nulls section of the instruction analysis, each with its finding.

Per protocol (`shiftlens.analysis.instructions` describes both): the summaries of each side, the tests
the protocol runs, and the finding that enters the Holm adjustment; the null statistics come from
`shiftlens.attribution.nulls`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Any

import numpy as np

from shiftlens import stats
from shiftlens.analysis.instruction_scores import ExampleScore, is_followed
from shiftlens.attribution import nulls
from shiftlens.evidence import Finding

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


def _one_sided(method: str, claim: str, test: Callable[..., float], a: Sequence[float], b: Sequence[float], **kw):
    """The paper protocol's guarded one-sided t-test (no interval), effect Cohen's d or d_z."""
    effect = stats.paired_dz_rows if kw.get("paired") else stats.cohens_d_rows
    return stats.guarded_finding(method, claim, test, a, b, effect=effect, **kw)


def _test_fields(finding: Finding, key: str = "p_value") -> dict[str, Any]:
    """A finding's p-value and reason under a row's key names (None where not testable)."""
    prefix = key.removesuffix("p_value")
    return {key: stats.finite(finding.p_value), f"{prefix}reason": finding.reason}


def _interval(finding: Finding) -> list[float | None] | None:
    return None if finding.ci is None else [stats.finite(v) for v in finding.ci]


def table1_row(items: list[ExampleScore], group: str, protocol: str, ddof: int, seed: int):
    labelled = [(item.score, is_followed(item.rating)) for item in items]
    labelled = [(score, label) for score, label in labelled if label is not None]
    followed = [score for score, label in labelled if label]
    unfollowed = [score for score, label in labelled if not label]
    row = {
        "followed": stats.summary_json(followed, ddof),
        "unfollowed": stats.summary_json(unfollowed, ddof),
        "test": TESTS[protocol]["table1"],
        "auc": stats.finite(stats.roc_auc([s for s, _ in labelled], [lab for _, lab in labelled])),
        "effect_size": stats.finite(stats.cohens_d(unfollowed, followed)),
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
            "followed": stats.summary_json(excess_followed, 1),
            "unfollowed": stats.summary_json(excess_unfollowed, 1),
            **_test_fields(finding),
            "effect_size": stats.finite(finding.effect_size),
            "ci": _interval(finding),
        },
    )
    return row, finding


def _pairs(base: list[ExampleScore], tuned: list[ExampleScore]) -> list[tuple[ExampleScore, ExampleScore]]:
    tuned_by_id = {t.id: t for t in tuned}
    return [(b, tuned_by_id[b.id]) for b in base if b.id in tuned_by_id]


def table2_paper(base: list[ExampleScore], tuned: list[ExampleScore], group: str):
    base_scores, tuned_scores = [b.score for b in base], [t.score for t in tuned]
    pairs = _pairs(base, tuned)
    paired_base, paired_tuned = [b.score for b, _ in pairs], [t.score for _, t in pairs]
    claim = f"{group}: the tuned model's instruction score exceeds the base model's"
    finding = _one_sided(METHOD, claim, stats.welch_less, base_scores, tuned_scores)
    paired = _one_sided(METHOD, claim, stats.paired_less, paired_base, paired_tuned, paired=True)
    row = {
        "base": stats.summary_json(base_scores, 0),
        "tuned": stats.summary_json(tuned_scores, 0),
        "test": TESTS["paper"]["table2"],
        **_test_fields(finding),
        "paired_test": TESTS["paper"]["table2_paired"],
        **_test_fields(paired, "paired_p_value"),
        "n_paired": len(pairs),
        "effect_size": stats.finite(stats.cohens_d(base_scores, tuned_scores)),
        "paired_effect_size": stats.finite(stats.paired_cohens_dz(paired_base, paired_tuned)),
    }
    return row, finding


def table2_sound(
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
        "base": stats.summary_json(base_scores, 1),
        "tuned": stats.summary_json(tuned_scores, 1),
        "paired_test": TESTS["sound"]["table2_paired"],
        **_test_fields(paired, "paired_p_value"),
        "n_paired": len(pairs),
        "paired_effect_size": stats.finite(paired.effect_size),
        "paired_ci": _interval(paired),
        "test": TESTS["sound"]["table2_unpaired"],
        **_test_fields(unpaired),
        "effect_size": stats.finite(stats.cohens_d(base_scores, tuned_scores)),
        "control": {
            "test": TESTS["sound"]["table2"],
            "n": len(null),
            "instruction_gain": stats.summary_json([n.gain for n in null], 1),
            "control_gain": stats.summary_json([n.control_gain for n in null], 1),
            **_test_fields(finding),
            "effect_size": stats.finite(finding.effect_size),
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
    """Guarded placement-randomization test (`shiftlens.attribution.nulls.placement_p`) of the instruction's gain over
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


def paired_null_stats(
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


def nulls_section(null: list[nulls.NullStats], left_out: dict[str, list[str]], seed: int):
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
            "instruction_gain": stats.summary_json([g[0] for g in sets], 1),
            "control_gain": stats.summary_json([g[1:].mean() for g in sets], 1),
            "anywhere_control_gain": stats.summary_json([n.control_gain for n in inside if n.matched().size > 1], 1),
            **_test_fields(finding),
            "effect_size": stats.finite(finding.effect_size),
            "ci": _interval(finding),
        }
    section = {
        "test": TESTS["sound"]["table2"],
        "seed": seed,
        "n": len(null),
        "left_out": left_out,
        "contrast": {
            "test": TESTS["sound"]["contrast"],
            "base": stats.summary_json([n.contrast[0] for n in null], 1),
            "tuned": stats.summary_json([n.contrast[1] for n in null], 1),
            **_test_fields(contrast),
            "effect_size": stats.finite(contrast.effect_size),
            "ci": _interval(contrast),
        },
        "strata_test": TESTS["sound"]["strata"],
        "strata": strata,
    }
    return section, findings
