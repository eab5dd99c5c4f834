"""How far tuning rotates each layer's FFN principal subspace, and the same statistic under a null update.

Observed: principal angles between the base and tuned top-R subspaces (from the stored components),
components matched one-to-one by the Hungarian assignment on |cos|, and the top-word overlap of matched
pairs. Null: the mean principal angle between the base subspace and that of base + `perturb_like` noise
(each neuron's output row moved by as much as tuning moved it, in a random direction), PCA recomputed on
the perturbed matrix, over seeded draws. An observed angle inside the null band is no more than an update
of that size does at random.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from scipy.optimize import linear_sum_assignment

from shiftlens.errors import ShiftlensError
from shiftlens.evidence import Finding, untestable_reason
from shiftlens.ffn.core import principal_components
from shiftlens.ffn.records import FfnRun
from shiftlens.ffn.sizing import check_rotation_components
from shiftlens.nulls import perturb_like
from shiftlens.stats import prediction_two_sided_p

METHOD = "ffn"


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
    """Per shared layer: mean principal angle, matched |cos| and top-word overlap; plus matched examples.

    Refuses R ≥ hidden/2 (`check_rotation_components`), where the angles are forced towards 0.
    """
    by_layer, examples = [], []
    for layer in sorted(set(base.layers) & set(tuned.layers)):
        a, b = base.layers[layer].components, tuned.layers[layer].components
        if a.shape[1] != b.shape[1]:
            raise ShiftlensError(f"layer {layer}: base hidden size {a.shape[1]} differs from tuned {b.shape[1]}")
        if a.shape[0] != b.shape[0]:
            raise ShiftlensError(f"layer {layer}: base has R = {a.shape[0]} components, tuned {b.shape[0]}")
        r = a.shape[0]
        check_rotation_components(r, a.shape[1])
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


def null_angles(
    base_rows: torch.Tensor, tuned_rows: torch.Tensor, n_components: int, generators: Sequence[torch.Generator]
) -> list[float]:
    """Mean principal angle (degrees) between base's top-R subspace and that of each perturbed base.

    ``base_rows``/``tuned_rows`` are one layer's neuron output vectors (intermediate × hidden); each draw
    perturbs ``base_rows`` with `perturb_like` (row norms of tuned − base) and recomputes the PCA.
    """
    check_rotation_components(n_components, base_rows.shape[1])
    reference = principal_components(base_rows, n_components).components.cpu().numpy()
    angles = []
    for generator in generators:
        perturbed = perturb_like(base_rows, tuned_rows, generator)
        components = principal_components(perturbed, n_components).components.cpu().numpy()
        angles.append(float(principal_angles_deg(reference, components).mean()))
    return angles


def empirical_p(observed: float, null: Sequence[float]) -> float:
    """Two-sided Monte Carlo p of ``observed`` among the null draws: 2 · min tail, (1 + hits) / (1 + draws)."""
    values = np.asarray(null, dtype=np.float64)
    tail = min((values >= observed).sum(), (values <= observed).sum())
    return float(min(1.0, 2 * (1 + tail) / (1 + values.size)))


def null_band(observed: float, null: Sequence[float], seed: int) -> dict[str, Any]:
    """One layer's null summary: the draws, their band [min, max], mean, and where the observed value falls."""
    values = [float(v) for v in null]
    low, high = min(values), max(values)
    return {
        "draws": len(values),
        "seed": seed,
        "angles_deg": values,
        "mean_deg": float(np.mean(values)),
        "low_deg": low,
        "high_deg": high,
        "observed_deg": observed,
        "position": "inside" if low <= observed <= high else ("above" if observed > high else "below"),
        "p_value": empirical_p(observed, values),
    }


def rotation_finding(by_layer: Sequence[dict[str, Any]]) -> Finding:
    """Does the mean principal angle over layers differ from that of tuning-sized random updates?

    The statistic is the mean over layers of each layer's mean principal angle; the null is the same mean
    for each seeded draw (draw d of every layer). Effect size: observed − null mean (degrees), with the
    range of observed − null over the draws as its interval. Needs at least 5 draws. p: the two-sided t
    prediction test of one more draw (`stats.prediction_two_sided_p`, the draws taken as normal), since the
    draws' rank p cannot fall below 2 / (draws + 1) (0.095 at the default 20); the per-layer bands keep that
    rank p (`empirical_p`).
    """
    bands = [row["rotation_null"] for row in by_layer]
    observed = float(np.mean([row["mean_principal_angle_deg"] for row in by_layer]))
    null = np.mean([band["angles_deg"] for band in bands], axis=0)
    claim = (
        f"FFN subspaces rotate by a mean principal angle of {observed:.2f}° over {len(bands)} layers, vs "
        f"{null.mean():.2f}° [{null.min():.2f}, {null.max():.2f}] for random updates of the tuning's size "
        f"({null.size} draws)"
    )
    reason = untestable_reason(null)
    if reason is not None:
        return Finding.untestable(METHOD, claim, f"null draws: {reason}")
    return Finding(
        METHOD,
        claim,
        True,
        p_value=prediction_two_sided_p(observed, null),
        effect_size=observed - float(null.mean()),
        ci=(observed - float(null.max()), observed - float(null.min())),
    )
