"""Table 5's units, tests and intervals under both protocols (the table itself: `shiftlens.ffn.table5`).

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

from shiftlens.ffn.labels import OK

PERMUTATIONS = 10_000
RESAMPLES = 2_000
CONFIDENCE = 0.95
NAMEABLE = "nameable"


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
