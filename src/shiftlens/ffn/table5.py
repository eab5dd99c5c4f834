"""Table 5 and Figure 3 of the FFN comparison: each category's share of nameable concepts, base vs tuned.

The rows of Table 5 (tasks, linguistic levels, the nameable share) with both sides, the difference and its
finding under either protocol, Holm-adjusted together; the tests and intervals themselves are in
`shiftlens.ffn.statistics`. Figure 3's per-layer-group shares are descriptive.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from shiftlens.evidence import Finding, adjust, check_protocol, untestable_reason
from shiftlens.ffn.prompts import LEVELS, TASKS
from shiftlens.ffn.statistics import (
    CONFIDENCE,
    NAMEABLE,
    PERMUTATIONS,
    RESAMPLES,
    Units,
    cluster_bootstrap,
    component_units,
    run_units,
    stratified_permutation_p,
    student_t,
)
from shiftlens.stats import summary_json

METHOD = "ffn"
# (result key, label field, categories); "nameable" is the share of components whose concept was named.
QUESTIONS: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    ("tasks", "tasks", TASKS),
    ("levels", "level", LEVELS),
    ("nameable_share", NAMEABLE, (NAMEABLE,)),
)
TESTS = {
    "sound": f"two-sided permutation test over components, stratified by layer ({PERMUTATIONS} draws); "
    f"{CONFIDENCE:.0%} CI from a cluster bootstrap (layers, then components; {RESAMPLES} resamples); Holm",
    "paper": "Student's t-test (equal variances) over annotation runs, std with ddof 0; Student's t CI; Holm",
}


def _share(units: Units, column: int) -> float | None:
    return float(units.values[:, column].mean()) if len(units) else None


def _side(units: Units, column: int, protocol: str, ci: np.ndarray | None) -> dict[str, Any]:
    """One model's share with what it is made of, and (by protocol) its std over runs or its CI.

    Sound: ``count`` of ``n`` components (a component's runs averaged, so counts may be fractional);
    paper: ``count`` of ``n`` labels summed over the runs.
    """
    share = _share(units, column)
    paper = protocol == "paper"
    side: dict[str, Any] = {
        "share": share,
        "mean": share,
        "count": float(units.counts[:, column].sum() if paper else units.values[:, column].sum()),
        "n": float(units.totals.sum() if paper else len(units)),
        "units": len(units),
    }
    if paper:
        side["std"] = summary_json(units.values[:, column], ddof=0)["std"]
    else:
        side["std"] = None
        side["ci"] = None if ci is None or share is None else [float(ci[column, 0]), float(ci[column, 1])]
    return side


def fmt_count(value: float) -> str:
    """A count as an integer when it is one (single runs), else with one decimal (runs averaged)."""
    return f"{value:.0f}" if float(value).is_integer() else f"{value:.1f}"


def describe_side(side: dict[str, Any], what: str) -> str:
    """ "17 of 32 nameable components (0.531)", or "no nameable components" without any."""
    if side["share"] is None:
        return f"no {what}"
    return f"{fmt_count(side['count'])} of {fmt_count(side['n'])} {what} ({side['share']:.3f})"


def _what(key: str, protocol: str) -> str:
    unit = "labels" if protocol == "paper" else "components"
    return f"labelled {unit}" if key == "nameable_share" else f"nameable {unit}"


def _question(
    key: str, base: Units, tuned: Units, categories: tuple[str, ...], protocol: str, settings: dict[str, Any]
) -> tuple[dict[str, dict[str, Any]], list[Finding]]:
    """The rows of one question (tasks, levels or the nameable share) and their unadjusted findings."""
    rng = np.random.default_rng(settings["seed"])
    p_perm = ci = None
    if protocol == "sound" and len(base) and len(tuned):
        p_perm = stratified_permutation_p(base, tuned, settings["permutations"], rng)
        ci = cluster_bootstrap(base, tuned, settings["resamples"], rng)
    rows, findings = {}, []
    for column, category in enumerate(categories):
        row: dict[str, Any] = {
            "base": _side(base, column, protocol, None if ci is None else ci[0]),
            "tuned": _side(tuned, column, protocol, None if ci is None else ci[1]),
        }
        b, t = _share(base, column), _share(tuned, column)
        row["difference"] = None if b is None or t is None else t - b
        reason = untestable_reason(base.values[:, column], tuned.values[:, column])
        p = interval = None
        if reason is None and protocol == "sound":
            p, interval = float(p_perm[column]), (float(ci[2][column, 0]), float(ci[2][column, 1]))
        elif reason is None:
            p, interval = student_t(base.values[:, column], tuned.values[:, column])
        what = _what(key, protocol)
        subject = (
            "share of FFN concepts that could be named"
            if key == "nameable_share"
            else f"share of nameable FFN concepts labelled '{category}'"
        )
        claim = f"{subject}: base {describe_side(row['base'], what)} → tuned {describe_side(row['tuned'], what)}"
        finding = (
            Finding.untestable(METHOD, claim, reason)
            if reason is not None
            else Finding(METHOD, claim, True, p_value=p, effect_size=row["difference"], ci=interval)
        )
        row.update(testable=finding.testable, reason=reason, p_value=p, ci=None if interval is None else list(interval))
        rows[category] = row
        findings.append(finding)
    return rows, findings


def table5(
    base_rows: Sequence[dict],
    tuned_rows: Sequence[dict],
    protocol: str = "sound",
    *,
    permutations: int = PERMUTATIONS,
    resamples: int = RESAMPLES,
    seed: int = 0,
    extra: Sequence[Finding] = (),
) -> dict[str, Any]:
    """Table 5 (tasks, levels) and the nameable share, base vs tuned, with Holm-corrected findings.

    Returns ``{"tasks": {category: row}, "levels": {...}, "nameable_share": row, "test", "finding"}``; a
    row holds both sides (share, the counts behind it, std or CI), the difference tuned − base, and
    ``testable``/``reason``/``p_value``/``p_adjusted``/``significant``/``ci``. ``finding`` lists
    `Finding` objects in row order, then ``extra`` (the analysis's other claims), adjusted together.
    """
    check_protocol(protocol)
    settings = {"permutations": permutations, "resamples": resamples, "seed": seed}
    to_units = component_units if protocol == "sound" else run_units
    result: dict[str, Any] = {}
    findings: list[Finding] = []
    placed: list[tuple[str, str]] = []
    for key, field, categories in QUESTIONS:
        base, tuned = to_units(base_rows, field, categories), to_units(tuned_rows, field, categories)
        rows, found = _question(key, base, tuned, categories, protocol, settings)
        result[key] = rows
        findings += found
        placed += [(key, category) for category in categories]
    findings = adjust([*findings, *extra])
    for (key, category), finding in zip(placed, findings, strict=False):
        result[key][category].update(p_adjusted=finding.p_adjusted, significant=finding.significant)
    result["nameable_share"] = result["nameable_share"][NAMEABLE]
    result["test"] = TESTS[protocol]
    if protocol == "sound":
        result["test_settings"] = settings
    result["finding"] = findings
    return result


def layer_groups(n_layers: int, protocol: str) -> list[list[int]]:
    """Figure 3's layer groups: the paper's ``layer // 4``, or (sound) eighths of the depth."""
    check_protocol(protocol)
    if protocol == "paper":
        return [list(range(start, min(start + 4, n_layers))) for start in range(0, n_layers, 4)]
    groups: dict[int, list[int]] = {}
    for layer in range(n_layers):
        groups.setdefault(min(layer * 8 // n_layers, 7), []).append(layer)
    return list(groups.values())


def per_layer_group(
    base_rows: Sequence[dict], tuned_rows: Sequence[dict], n_layers: int, protocol: str = "sound"
) -> list[dict[str, Any]]:
    """Figure 3: each category's share within each layer group, with the counts behind it (descriptive)."""
    to_units = component_units if protocol == "sound" else run_units
    entries = []
    for index, layers in enumerate(layer_groups(n_layers, protocol)):
        entry: dict[str, Any] = {"group": index, "layers": [layers[0], layers[-1]]}
        chosen = set(layers)
        for key, field, categories in QUESTIONS[:2]:
            cells: dict[str, dict[str, Any]] = {c: {} for c in categories}
            for model, rows in (("base", base_rows), ("tuned", tuned_rows)):
                units = to_units([r for r in rows if r["layer"] in chosen], field, categories)
                for column, category in enumerate(categories):
                    cells[category][model] = _share(units, column)
                    cells[category][f"{model}_count"] = float(units.counts[:, column].sum())
                    cells[category][f"{model}_n"] = float(units.totals.sum())
            entry[key] = cells
        entries.append(entry)
    return entries
