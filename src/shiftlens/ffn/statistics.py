"""Table 5 statistics under both protocols: the share of nameable FFN concepts in each category, base vs tuned.

``sound`` (default): the unit is the component. A component's repeated annotation runs are averaged first
(its value for a category: the fraction of its runs, among those that named a concept and answered the
question, that give the category); a model's share is the mean over its components. Base vs tuned is a
two-sided permutation test that swaps the model labels among the components of one layer (stratified by
layer, so every layer keeps its number of base and tuned components); the 95 % interval comes from a
two-stage cluster bootstrap (layers resampled, then components within each). Runs that re-annotate the
same components are not independent observations, so they never count as the sample.

``paper``: the authors' analysis: one share per annotation run, mean ± std (ddof 0) over the runs and
Student's t-test (equal variances) between the runs of the two models.

Both: the degenerate-data guard (`shiftlens.evidence.untestable_reason`) on the values each test sees,
and Holm's correction across every row of the table (task categories, linguistic levels, nameable share).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import stats

from shiftlens.evidence import Finding, adjust, check_protocol, untestable_reason
from shiftlens.ffn.labels import OK
from shiftlens.ffn.prompts import LEVELS, TASKS

METHOD = "ffn"
PERMUTATIONS = 10_000
RESAMPLES = 2_000
CONFIDENCE = 0.95
NAMEABLE = "nameable"
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


@dataclass(frozen=True)
class Units:
    """The observations one test sees for one model: ``values`` (unit × category) and each unit's layer.

    A unit is a component (sound protocol; layer = its layer) or an annotation run (paper; layer = -1).
    ``counts`` / ``totals`` are what each share is made of (category hits / labels behind them).
    """

    layers: np.ndarray
    values: np.ndarray
    counts: np.ndarray
    totals: np.ndarray

    def __len__(self) -> int:
        return int(self.values.shape[0])


def _answered(row: dict, field: str) -> bool:
    """Whether a label row counts towards the shares of ``field`` (named concept with a parsed answer)."""
    if field == NAMEABLE:
        return True
    return bool(row["nameable"]) and row[f"{field}_status"] == OK


def _hit(row: dict, field: str, category: str) -> bool:
    if field == NAMEABLE:
        return bool(row["nameable"])
    return category in (row["tasks"] or []) if field == "tasks" else row["level"] == category


def _units(rows: Sequence[dict], field: str, categories: tuple[str, ...], key: str) -> Units:
    """Group the answered label rows by ``key`` ("component": (layer, component); "run") into units."""
    groups: dict[Any, list[dict]] = {}
    for row in rows:
        if _answered(row, field):
            unit = (row["layer"], row["component"]) if key == "component" else row["run"]
            groups.setdefault(unit, []).append(row)
    units = sorted(groups)
    counts = np.array(
        [[sum(_hit(r, field, c) for r in groups[u]) for c in categories] for u in units], dtype=np.float64
    ).reshape(len(units), len(categories))
    totals = np.array([len(groups[u]) for u in units], dtype=np.float64)
    layers = np.array([u[0] if key == "component" else -1 for u in units], dtype=np.int64)
    values = counts / totals[:, None] if len(units) else counts
    return Units(layers, values, counts, totals)


def component_units(rows: Sequence[dict], field: str, categories: tuple[str, ...]) -> Units:
    """Sound protocol: one unit per component, its runs averaged (only components with an answer)."""
    return _units(rows, field, categories, "component")


def run_units(rows: Sequence[dict], field: str, categories: tuple[str, ...]) -> Units:
    """Paper protocol: one unit per annotation run, its share among that run's answered labels."""
    return _units(rows, field, categories, "run")


def stratified_permutation_p(base: Units, tuned: Units, permutations: int, rng: np.random.Generator) -> np.ndarray:
    """Two-sided p per category of mean(tuned) − mean(base), model labels permuted within each layer.

    p = (1 + #{|permuted| ≥ |observed|}) / (1 + permutations). Each draw picks, per layer, which of the
    layer's pooled units are "tuned" (as many as there really are); the choice is made by thresholding
    uniform keys at their k-th smallest, so a draw costs one partial sort per layer.
    """
    observed = tuned.values.mean(axis=0) - base.values.mean(axis=0)
    total = base.values.sum(axis=0) + tuned.values.sum(axis=0)
    tuned_sum = np.zeros((permutations, observed.size))
    for layer in np.union1d(base.layers, tuned.layers):
        pooled = np.vstack([base.values[base.layers == layer], tuned.values[tuned.layers == layer]])
        k = int((tuned.layers == layer).sum())
        if k in (0, pooled.shape[0]):
            tuned_sum += pooled[pooled.shape[0] - k :].sum(axis=0)
            continue
        keys = rng.random((permutations, pooled.shape[0]))
        kth = np.partition(keys, k - 1, axis=1)[:, k - 1 : k]
        tuned_sum += (keys <= kth).astype(np.float64) @ pooled
    permuted = tuned_sum / len(tuned) - (total - tuned_sum) / len(base)
    extreme = np.abs(permuted) >= np.abs(observed) - 1e-12
    return (1.0 + extreme.sum(axis=0)) / (1.0 + permutations)


def cluster_bootstrap(
    base: Units, tuned: Units, resamples: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Percentile intervals (category × 2) of the base share, the tuned share and their difference.

    Two stages: draw the layers with replacement, then within each drawn copy of a layer its base and
    its tuned components with replacement; a layer's components are never treated as independent of
    each other. Vectorised: a replicate's layer counts are multinomial, its draws summed by bincount.
    """
    layers = np.union1d(base.layers, tuned.layers)
    columns = base.values.shape[1]
    copies = rng.multinomial(layers.size, np.full(layers.size, 1 / layers.size), size=resamples)  # (B, layers)
    shares = np.empty((2, resamples, columns))
    for side, units in enumerate((base, tuned)):
        sums, sizes = np.zeros((resamples, columns)), np.zeros(resamples)
        for i, layer in enumerate(layers):
            values = units.values[units.layers == layer]
            if not len(values):
                continue
            owner = np.repeat(np.arange(resamples), copies[:, i] * len(values))  # each copy drawn afresh
            drawn = values[rng.integers(len(values), size=owner.size)]
            for c in range(columns):
                sums[:, c] += np.bincount(owner, weights=drawn[:, c], minlength=resamples)
            sizes += copies[:, i] * len(values)
        with np.errstate(invalid="ignore", divide="ignore"):
            shares[side] = sums / sizes[:, None]  # NaN where no layer of this side was drawn
    alpha = 100 * (1 - CONFIDENCE) / 2
    base_ci, tuned_ci, diff_ci = (
        np.nanpercentile(x, [alpha, 100 - alpha], axis=0).T for x in (shares[0], shares[1], shares[1] - shares[0])
    )
    return base_ci, tuned_ci, diff_ci


def student_t(base: np.ndarray, tuned: np.ndarray) -> tuple[float, tuple[float, float]]:
    """Student's t-test (equal variances) p-value and the pooled-variance CI of mean(tuned) − mean(base)."""
    n_b, n_t = base.size, tuned.size
    p = float(stats.ttest_ind(tuned, base, equal_var=True).pvalue)
    pooled = ((n_b - 1) * base.var(ddof=1) + (n_t - 1) * tuned.var(ddof=1)) / (n_b + n_t - 2)
    half = stats.t.ppf(0.5 + CONFIDENCE / 2, n_b + n_t - 2) * np.sqrt(pooled * (1 / n_b + 1 / n_t))
    difference = float(tuned.mean() - base.mean())
    return p, (difference - half, difference + half)


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
        side["std"] = float(units.values[:, column].std(ddof=0)) if len(units) else None
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
