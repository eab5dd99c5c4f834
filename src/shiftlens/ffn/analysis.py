"""Base vs tuned FFN concepts: Table 5 shares, Figure 3 per layer group, and the rotation of the subspaces.

Shares are computed per annotation run among the nameable concepts (mean ± std over runs, Welch's
t-test base vs tuned). The rotation is measured on the stored components themselves: principal
angles between the base and tuned top-R subspaces of each layer, components matched one-to-one by
the Hungarian assignment on |cos|, and the top-word overlap of matched pairs.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
from scipy.optimize import linear_sum_assignment
from scipy.stats import ttest_ind

from shiftlens.errors import ShiftlensError
from shiftlens.ffn.annotate import default_out
from shiftlens.ffn.labels import LABELS_FILE, OK, read_labels
from shiftlens.ffn.prompts import LEVELS, TASKS
from shiftlens.ffn.records import FfnRun, read_ffn_run
from shiftlens.storage import read_manifest

N_GROUPS = 8


def run_shares(rows: list[dict], field: str, categories: tuple[str, ...]) -> dict[str, list[float]]:
    """Per category, its share among the nameable labels with a parsed ``field`` answer, one value per run.

    ``field`` is "tasks" (a label may count for several categories) or "level" (exactly one). A run
    with no such label contributes no value.
    """
    by_run: dict[int, list[dict]] = {}
    for row in rows:
        if row["nameable"] and row[f"{field}_status"] == OK:
            by_run.setdefault(row["run"], []).append(row)
    shares: dict[str, list[float]] = {c: [] for c in categories}
    for run in sorted(by_run):
        labelled = by_run[run]
        for category in categories:
            hits = sum(category in row["tasks"] if field == "tasks" else row["level"] == category for row in labelled)
            shares[category].append(hits / len(labelled))
    return shares


def nameable_shares(rows: list[dict]) -> list[float]:
    """Per run, the share of labelled components whose concept could be named."""
    runs = sorted({row["run"] for row in rows})
    return [float(np.mean([row["nameable"] for row in rows if row["run"] == run])) for run in runs]


def _mean_std(values: list[float]) -> dict[str, float | None]:
    if not values:
        return {"mean": None, "std": None}
    std = float(np.std(values, ddof=1)) if len(values) > 1 else 0.0
    return {"mean": float(np.mean(values)), "std": std}


def compare_shares(base: list[float], tuned: list[float]) -> dict[str, Any]:
    """Mean ± std over runs for each model and Welch's t-test p-value (None when it is undefined)."""
    p_value = None
    if len(base) > 1 and len(tuned) > 1 and np.var(base) + np.var(tuned) > 0:
        p = float(ttest_ind(base, tuned, equal_var=False).pvalue)
        p_value = None if math.isnan(p) else p
    return {"base": _mean_std(base), "tuned": _mean_std(tuned), "p_value": p_value}


def share_tables(base_rows: list[dict], tuned_rows: list[dict]) -> dict[str, dict[str, Any]]:
    """Table 5: task categories and linguistic levels, base vs tuned."""
    tables = {}
    for key, field, categories in (("tasks", "tasks", TASKS), ("levels", "level", LEVELS)):
        base, tuned = run_shares(base_rows, field, categories), run_shares(tuned_rows, field, categories)
        tables[key] = {c: compare_shares(base[c], tuned[c]) for c in categories}
    return tables


def layer_group(layer: int, n_layers: int) -> int:
    """Which eighth of the depth a layer falls in (0..7)."""
    return min(layer * N_GROUPS // n_layers, N_GROUPS - 1)


def per_layer_group(base_rows: list[dict], tuned_rows: list[dict], n_layers: int) -> list[dict[str, Any]]:
    """Figure 3: the Table 5 shares (means over runs) within each eighth of the depth."""
    groups = []
    for group in range(N_GROUPS):
        layers = [layer for layer in range(n_layers) if layer_group(layer, n_layers) == group]
        if not layers:
            continue
        entry: dict[str, Any] = {"group": group, "layers": [layers[0], layers[-1]]}
        for key, field, categories in (("tasks", "tasks", TASKS), ("levels", "level", LEVELS)):
            entry[key] = {}
            for model, rows in (("base", base_rows), ("tuned", tuned_rows)):
                shares = run_shares([r for r in rows if r["layer"] in layers], field, categories)
                for category in categories:
                    entry[key].setdefault(category, {})[model] = _mean_std(shares[category])["mean"]
        groups.append(entry)
    return groups


def _orthonormal(rows: np.ndarray) -> np.ndarray:
    q, _ = np.linalg.qr(rows.astype(np.float64).T)
    return q.T


def principal_angles_deg(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Principal angles (degrees, ascending) between the row spaces of ``a`` and ``b``."""
    cosines = np.linalg.svd(_orthonormal(a) @ _orthonormal(b).T, compute_uv=False)
    return np.degrees(np.arccos(np.clip(cosines, 0.0, 1.0)))


def match_components(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """One-to-one matching of ``a``'s rows to ``b``'s maximising total |cos|: (b index per a row, |cos|)."""
    unit_a = a / np.linalg.norm(a, axis=1, keepdims=True)
    unit_b = b / np.linalg.norm(b, axis=1, keepdims=True)
    similarity = np.abs(unit_a.astype(np.float64) @ unit_b.astype(np.float64).T)
    rows, cols = linear_sum_assignment(similarity, maximize=True)
    match = np.empty(a.shape[0], dtype=np.int64)
    match[rows] = cols
    return match, similarity[np.arange(a.shape[0]), match]


def rotation(
    base: FfnRun, tuned: FfnRun, overlap_words: int = 15, examples_per_layer: int = 3
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Per shared layer: mean principal angle, matched |cos| and top-word overlap; plus matched examples."""
    by_layer, examples = [], []
    for layer in sorted(set(base.layers) & set(tuned.layers)):
        a, b = base.layers[layer].components, tuned.layers[layer].components
        if a.shape[1] != b.shape[1]:
            raise ShiftlensError(f"layer {layer}: base hidden size {a.shape[1]} differs from tuned {b.shape[1]}")
        r = min(a.shape[0], b.shape[0])
        a, b = a[:r], b[:r]
        match, abs_cos = match_components(a, b)
        overlaps = [
            len(set(base.top_words(layer, i, overlap_words)) & set(tuned.top_words(layer, int(j), overlap_words)))
            / overlap_words
            for i, j in enumerate(match)
        ]
        by_layer.append(
            {
                "layer": layer,
                "n_components": r,
                "mean_principal_angle_deg": float(principal_angles_deg(a, b).mean()),
                "matched_abs_cos_mean": float(abs_cos.mean()),
                "word_overlap_mean": float(np.mean(overlaps)),
            }
        )
        for i in range(min(examples_per_layer, r)):
            examples.append(
                {
                    "layer": layer,
                    "base_component": i,
                    "tuned_component": int(match[i]),
                    "abs_cos": float(abs_cos[i]),
                    "word_overlap": overlaps[i],
                    "base_words": base.top_words(layer, i, 10),
                    "tuned_words": tuned.top_words(layer, int(match[i]), 10),
                }
            )
    if not by_layer:
        raise ShiftlensError(f"{base.path} and {tuned.path} share no layer")
    return by_layer, examples


def _annotations(ffn_dir: Path, given: str | Path | None) -> tuple[list[dict] | None, dict | None]:
    path = Path(given) if given is not None else default_out(ffn_dir)
    if given is None and not (path / LABELS_FILE).exists():
        return None, None
    return read_labels(path), read_manifest(path)["params"]["annotator"]


def analyze_ffn(
    base_dir: str | Path,
    tuned_dir: str | Path,
    *,
    base_annotations: str | Path | None = None,
    tuned_annotations: str | Path | None = None,
    overlap_words: int = 15,
) -> dict[str, Any]:
    """Compare a base and a tuned FFN run (and their annotations, found in DIR/annotations by default).

    Without annotations on both sides only the rotation is reported.
    """
    base, tuned = read_ffn_run(base_dir), read_ffn_run(tuned_dir)
    by_layer, examples = rotation(base, tuned, overlap_words)
    result: dict[str, Any] = {"rotation_by_layer": by_layer, "matched_examples": examples}
    base_rows, base_annotator = _annotations(Path(base_dir), base_annotations)
    tuned_rows, tuned_annotator = _annotations(Path(tuned_dir), tuned_annotations)
    if base_rows is None or tuned_rows is None:
        result["annotations"] = None
        return result
    result.update(share_tables(base_rows, tuned_rows))
    result["nameable_share"] = compare_shares(nameable_shares(base_rows), nameable_shares(tuned_rows))
    result["per_layer_group"] = per_layer_group(base_rows, tuned_rows, base.n_layers)
    heuristic = bool(base_annotator.get("heuristic") or tuned_annotator.get("heuristic"))
    result["annotations"] = {"base": base_annotator, "tuned": tuned_annotator, "heuristic": heuristic}
    return result
