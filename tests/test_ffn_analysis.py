"""FFN comparison: shares and t-tests on hand data, planted rotations, the JSON and the CLI."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from scipy import stats

from shiftlens.cli.main import main
from shiftlens.ffn.analysis import (
    analyze_ffn,
    compare_shares,
    layer_group,
    match_components,
    principal_angles_deg,
    run_shares,
)
from shiftlens.ffn.labels import Label, write_labels
from shiftlens.ffn.records import KIND, VOCABULARY_FILE, unit_name
from shiftlens.storage import RunDirectory, atomic_write_json

WORDS = [f"w{i}" for i in range(40)]


def write_fake_ffn_run(path, components: dict[int, np.ndarray], n_layers: int = 8, k: int = 15) -> None:
    """An FFN run directory in the stored format, top words ranked by the first coordinates (hand data)."""
    with RunDirectory(path, KIND, {"fake": True}, {"model_layers": n_layers}) as run:
        atomic_write_json(run.path / VOCABULARY_FILE, WORDS)
        for layer, comps in components.items():
            scores = comps[:, : len(WORDS)]
            order = np.argsort(-np.abs(scores), axis=1, kind="stable")[:, :k]
            run.write_unit(
                unit_name(layer),
                {"layer": layer},
                {
                    "components": comps.astype(np.float32),
                    "explained_variance_ratio": np.linspace(0.2, 0.01, comps.shape[0]),
                    "explained_variance": np.linspace(2, 0.1, comps.shape[0]),
                    "top_indices": order.astype(np.int64),
                    "top_scores": np.take_along_axis(scores, order, 1).astype(np.float32),
                },
            )


def row(run, nameable=True, tasks=(), level="semantics", layer=0, tasks_status="ok", level_status="ok"):
    return {
        "layer": layer,
        "component": 0,
        "run": run,
        "nameable": nameable,
        "concept": "c" if nameable else None,
        "tasks": list(tasks),
        "level": level,
        "tasks_status": tasks_status,
        "level_status": level_status,
    }


def test_run_shares_on_hand_rows():
    rows = [
        row(0, tasks=["coding"]),
        row(0, tasks=["coding", "math"], level="syntax"),
        row(0, tasks=[]),
        row(0, tasks=["translation"]),
        row(0, nameable=False, tasks=["coding"]),  # not nameable: ignored
        row(0, tasks=["coding"], tasks_status="unparseable", level_status="unparseable"),  # ignored
        row(1, tasks=["math"]),
        row(1, tasks=["coding"], level="morphology"),
    ]
    tasks = run_shares(rows, "tasks", ("coding", "math", "translation", "daily writing"))
    assert tasks == {
        "coding": [0.5, 0.5],
        "math": [0.25, 0.5],
        "translation": [0.25, 0.0],
        "daily writing": [0, 0],
    }
    levels = run_shares(rows, "level", ("syntax", "semantics", "morphology"))
    assert levels == {"syntax": [0.25, 0.0], "semantics": [0.75, 0.5], "morphology": [0.0, 0.5]}


def test_compare_shares_welch_test_written_out():
    base, tuned = [0.5, 0.6, 0.7, 0.55], [0.2, 0.3, 0.25]
    result = compare_shares(base, tuned)
    va, vb = np.var(base, ddof=1) / 4, np.var(tuned, ddof=1) / 3
    t = (np.mean(base) - np.mean(tuned)) / math.sqrt(va + vb)
    df = (va + vb) ** 2 / (va**2 / 3 + vb**2 / 2)
    assert result["p_value"] == pytest.approx(2 * stats.t.sf(abs(t), df), rel=1e-9)
    assert result["base"] == {"mean": pytest.approx(0.5875), "std": pytest.approx(np.std(base, ddof=1))}
    assert compare_shares([0.5], [0.2])["p_value"] is None  # one run: no test
    assert compare_shares([0.5, 0.5], [0.5, 0.5])["p_value"] is None  # zero variance: undefined
    assert compare_shares([], [0.2])["base"] == {"mean": None, "std": None}


def test_layer_groups_are_eighths_of_depth():
    assert [layer_group(i, 30) for i in (0, 3, 4, 15, 29)] == [0, 0, 1, 4, 7]
    assert [layer_group(i, 8) for i in range(8)] == list(range(8))


def rotated_pair(h=40, r=6, angle_deg=20.0, seed=0):
    """Orthonormal rows a and b = a rotated by `angle_deg` into directions outside span(a)."""
    q, _ = np.linalg.qr(np.random.default_rng(seed).standard_normal((h, 2 * r)))
    a, outside = q[:, :r].T, q[:, r:].T
    theta = np.radians(angle_deg)
    return a, np.cos(theta) * a + np.sin(theta) * outside


def test_principal_angles_of_a_planted_rotation():
    a, b = rotated_pair(angle_deg=20.0)
    np.testing.assert_allclose(principal_angles_deg(a, b), 20.0, atol=1e-6)
    np.testing.assert_allclose(principal_angles_deg(a, a[::-1] * -1), 0.0, atol=1e-5)


def test_hungarian_matching_recovers_a_signed_permutation():
    a, _ = rotated_pair()
    permutation = np.array([3, 0, 5, 1, 4, 2])
    b = a[permutation] * np.array([1, -1, 1, -1, -1, 1])[:, None]
    match, abs_cos = match_components(a, b)
    assert (permutation[match] == np.arange(6)).all()
    np.testing.assert_allclose(abs_cos, 1.0)


def test_analyze_without_and_with_annotations(tmp_path):
    a, b = rotated_pair(angle_deg=30.0)
    write_fake_ffn_run(tmp_path / "base", {0: a, 5: a})
    write_fake_ffn_run(tmp_path / "tuned", {0: a[::-1].copy(), 5: b})
    result = analyze_ffn(tmp_path / "base", tmp_path / "tuned")
    assert result["annotations"] is None and "tasks" not in result
    layer0, layer5 = result["rotation_by_layer"]
    assert layer0 == {
        "layer": 0,
        "n_components": 6,
        "mean_principal_angle_deg": pytest.approx(0, abs=1e-3),
        "matched_abs_cos_mean": pytest.approx(1.0),
        "word_overlap_mean": 1.0,
    }
    assert layer5["mean_principal_angle_deg"] == pytest.approx(30.0, abs=1e-3)
    assert layer5["matched_abs_cos_mean"] == pytest.approx(math.cos(math.radians(30)), abs=1e-6)
    assert result["matched_examples"][0]["tuned_component"] == 5  # reversed order
    # annotations: base names coding in every run, tuned in none
    for name, tasks in (("base", ["coding"]), ("tuned", ["math"])):
        labels = {
            (layer, c, run): Label("c", tasks, "syntax", {"concept": "ok", "tasks": "ok", "level": "ok"})
            for layer in (0, 5)
            for c in range(2)
            for run in range(3)
        }
        out = tmp_path / name / "annotations"
        with RunDirectory(out, "ffn-annotations", {}, {}) as run_dir:
            write_labels(run_dir.path / "labels.parquet", labels, heuristic=name == "tuned")
            run_dir.manifest["params"] = {"annotator": {"annotator": "x", "heuristic": name == "tuned"}}
            run_dir.update_manifest()
    result = analyze_ffn(tmp_path / "base", tmp_path / "tuned")
    assert result["tasks"]["coding"]["base"] == {"mean": 1.0, "std": 0.0}
    assert result["tasks"]["coding"]["tuned"] == {"mean": 0.0, "std": 0.0}
    assert result["levels"]["syntax"]["tuned"]["mean"] == 1.0
    assert result["annotations"]["heuristic"] is True
    assert result["nameable_share"]["base"] == {"mean": 1.0, "std": 0.0}
    groups = {g["group"]: g for g in result["per_layer_group"]}
    assert groups[0]["tasks"]["coding"] == {"base": 1.0, "tuned": 0.0}
    assert groups[3]["tasks"]["coding"] == {"base": None, "tuned": None}  # no labelled layer there


def test_cli_writes_json_and_figures(tmp_path, capsys):
    a, b = rotated_pair()
    write_fake_ffn_run(tmp_path / "base", {0: a})
    write_fake_ffn_run(tmp_path / "tuned", {0: b})
    code = main(
        [
            "analyze",
            "ffn",
            str(tmp_path / "base"),
            str(tmp_path / "tuned"),
            "--json",
            str(tmp_path / "r.json"),
            "--out",
            str(tmp_path / "fig"),
        ]
    )
    assert code == 0
    result = json.loads((tmp_path / "r.json").read_text())
    assert set(result["rotation_by_layer"][0]) >= {
        "layer",
        "mean_principal_angle_deg",
        "matched_abs_cos_mean",
        "word_overlap_mean",
    }
    assert (tmp_path / "fig" / "ffn_rotation.png").stat().st_size > 0
    assert (tmp_path / "fig" / "ffn_rotation.svg").exists()
    assert main(["analyze", "ffn", str(tmp_path / "base"), str(tmp_path / "nothing")]) == 2
    assert "not a shiftlens run directory" in capsys.readouterr().err
