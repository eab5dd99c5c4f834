"""FFN comparison: shares and t-tests on hand data, planted rotations, the JSON and the CLI."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from support.labels import label

from shiftlens.analysis.ffn import FfnResult, analyze_ffn
from shiftlens.cli.main import main
from shiftlens.errors import ShiftlensError
from shiftlens.ffn.labels import Label, write_labels
from shiftlens.ffn.prompts import LEVELS, TASKS
from shiftlens.ffn.records import KIND, VOCABULARY_FILE, unit_name
from shiftlens.ffn.rotation import match_components, principal_angles_deg
from shiftlens.ffn.statistics import run_units
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


def test_paper_unit_is_the_share_per_annotation_run():
    rows = [
        label(0, 0, run=0, tasks=["coding"]),
        label(0, 1, run=0, tasks=["coding", "math"], level="syntax"),
        label(0, 2, run=0, tasks=[]),
        label(0, 3, run=0, tasks=["translation"]),
        label(0, 4, run=0, tasks=["coding"], nameable=False),  # not nameable: ignored
        label(
            0, 5, run=0, tasks=["coding"], tasks_status="unparseable", level_status="unparseable"
        ),  # no parsed answer: ignored
        label(0, 0, run=1, tasks=["math"]),
        label(0, 1, run=1, tasks=["coding"], level="morphology"),
    ]
    tasks = run_units(rows, "tasks", ("coding", "math", "translation", "daily writing"))
    np.testing.assert_allclose(tasks.values, [[0.5, 0.25, 0.25, 0], [0.5, 0.5, 0, 0]])
    np.testing.assert_array_equal(tasks.totals, [4, 2])
    levels = run_units(rows, "level", ("syntax", "semantics", "morphology"))
    np.testing.assert_allclose(levels.values, [[0.25, 0.75, 0], [0, 0.5, 0.5]])


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
    assert result["protocol"] == "sound" and result["components"] == 6 and result["hidden"] == 40
    assert result["finding"] == []  # no annotations, no null: nothing is claimed
    # annotations: base names coding in every run, tuned in none; 4 components a side, 3 runs each
    for name, tasks in (("base", ["coding"]), ("tuned", ["math"])):
        labels = {
            (layer, c, run): Label("c", tasks, "syntax", {"concept": "ok", "tasks": "ok", "level": "ok"})
            for layer in (0, 5)
            for c in range(2)
            for run in range(3)
        }
        write_fake_labels(tmp_path / name / "annotations", labels, heuristic=name == "tuned")
    result = analyze_ffn(tmp_path / "base", tmp_path / "tuned")
    coding = result["tasks"]["coding"]
    assert (coding["base"]["share"], coding["base"]["count"], coding["base"]["n"]) == (1.0, 4, 4)
    assert (coding["tuned"]["share"], coding["tuned"]["count"]) == (0.0, 0)
    assert coding["base"]["std"] is None  # no "± 0": a spread over runs is not the sound protocol's unit
    assert not coding["testable"] and coding["p_value"] is None  # 4 components a side (12 labels do not count)
    assert "n = 4 < 5" in coding["reason"]
    assert result["levels"]["syntax"]["tuned"]["mean"] == 1.0
    assert result["annotations"]["heuristic"] is True
    assert result["nameable_share"]["base"]["share"] == 1.0
    assert len(result["finding"]) == len(TASKS) + len(LEVELS) + 1
    assert all(f["testable"] is False and f["p_value"] is None for f in result["finding"])
    assert "base 4 of 4 nameable components (1.000) → tuned 0 of 4" in result["finding"][TASKS.index("coding")]["claim"]
    groups = {g["group"]: g for g in result["per_layer_group"]}
    assert groups[0]["tasks"]["coding"]["base"] == 1.0 and groups[0]["tasks"]["coding"]["tuned"] == 0.0
    assert groups[3]["tasks"]["coding"]["base"] is None  # no labelled layer there
    paper = analyze_ffn(tmp_path / "base", tmp_path / "tuned", protocol="paper")
    assert paper["protocol"] == "paper" and paper["tasks"]["coding"]["base"]["units"] == 3  # runs
    assert paper["tasks"]["coding"]["reason"] == "side 1: n = 3 < 5; side 2: n = 3 < 5"


def write_fake_labels(out, labels, heuristic):
    """An annotation directory holding ``labels`` ((layer, component, run) → Label)."""
    with RunDirectory(out, "ffn-annotations", {}, {}) as run_dir:
        write_labels(run_dir.path / "labels.parquet", labels, heuristic=heuristic)
        run_dir.manifest["params"] = {"annotator": {"annotator": "x", "heuristic": heuristic}}
        run_dir.update_manifest()


def test_rotation_of_half_the_space_or_more_is_refused(tmp_path, capsys):
    q, _ = np.linalg.qr(np.random.default_rng(0).standard_normal((40, 40)))
    write_fake_ffn_run(tmp_path / "base", {0: q[:20].copy()})
    write_fake_ffn_run(tmp_path / "tuned", {0: q[20:].copy()})
    with pytest.raises(ShiftlensError, match=r"rotation needs R < hidden/2: 20 components of hidden size 40"):
        analyze_ffn(tmp_path / "base", tmp_path / "tuned")
    assert main(["analyze", "ffn", str(tmp_path / "base"), str(tmp_path / "tuned")]) == 2
    err = capsys.readouterr().err
    assert "--components 3 (the default) or at most 19" in err and len(err.strip().splitlines()) == 1
    write_fake_ffn_run(tmp_path / "whole", {0: q[:40].copy()})  # the old demo: R = hidden, angle 0 whatever
    with pytest.raises(ShiftlensError, match="share at least 40 dimensions"):
        analyze_ffn(tmp_path / "whole", tmp_path / "whole")


def test_single_run_labels_never_print_a_test_that_did_not_happen(tmp_path, capsys):
    a, b = rotated_pair()
    write_fake_ffn_run(tmp_path / "base", {0: a})
    write_fake_ffn_run(tmp_path / "tuned", {0: b})
    for name in ("base", "tuned"):  # one run (the lexical annotator), 3 nameable components a side
        labels = {
            (0, c, 0): Label("c", ["coding"], "syntax", {"concept": "ok", "tasks": "ok", "level": "ok"})
            for c in range(3)
        }
        write_fake_labels(tmp_path / name / "annotations", labels, heuristic=True)
    assert (
        main(["analyze", "ffn", str(tmp_path / "base"), str(tmp_path / "tuned"), "--json", str(tmp_path / "r.json")])
        == 0
    )
    out = capsys.readouterr().out
    assert "±" not in out and "differ at p" not in out and "p 1" not in out
    assert "not testable (side 1: n = 3 < 5; side 2: n = 3 < 5)" in out
    assert "3/3 (1.000)" in out and "no row is testable (11 rows): no claim about the concept shares" in out
    assert "R = 6 components per layer of hidden size 40" in out
    result = json.loads((tmp_path / "r.json").read_text())
    assert result["protocol"] == "sound" and result["components"] == 6
    assert {frozenset(f) for f in result["finding"]} == {
        frozenset(
            ("method", "claim", "testable", "reason", "p_value", "p_adjusted", "significant", "effect_size", "ci")
        )
    }
    assert not any(f["testable"] or f["significant"] for f in result["finding"])
    assert main(["analyze", "ffn", str(tmp_path / "base"), str(tmp_path / "tuned"), "--protocol", "paper"]) == 0
    out = capsys.readouterr().out
    assert "±" not in out and "differ at p" not in out
    assert "not testable (side 1: n = 1 < 5; side 2: n = 1 < 5)" in out and "protocol paper: Student's t" in out


def test_the_result_computes_without_writing_and_saves_its_json_and_figures(tmp_path):
    a, b = rotated_pair()
    write_fake_ffn_run(tmp_path / "base", {0: a})
    write_fake_ffn_run(tmp_path / "tuned", {0: b})
    before = sorted(p.name for p in tmp_path.rglob("*"))
    result = analyze_ffn(tmp_path / "base", tmp_path / "tuned")
    assert isinstance(result, FfnResult) and sorted(p.name for p in tmp_path.rglob("*")) == before
    assert result.rotation_by_layer is result["rotation_by_layer"] and result.annotations is None
    paths = result.save(tmp_path / "out")
    assert {p.name for p in paths} == {"ffn_analysis.json", "ffn_rotation.png", "ffn_rotation.svg"}
    assert json.loads((tmp_path / "out" / "ffn_analysis.json").read_text()) == json.loads(json.dumps(result.to_json()))


@pytest.mark.parametrize("analysis", ["instructions", "heads", "ffn"])
def test_every_analyze_command_gives_out_and_json_one_meaning(analysis, capsys):
    with pytest.raises(SystemExit):
        main(["analyze", analysis, "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "--out DIR write everything to DIR: " in text and "--json PATH write only the result as JSON" in text


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
    assert json.loads((tmp_path / "fig" / "ffn_analysis.json").read_text()) == result  # --out: everything
    assert main(["analyze", "ffn", str(tmp_path / "base"), str(tmp_path / "tuned"), "--json", str(tmp_path / "j")]) == 0
    assert json.loads((tmp_path / "j").read_text()) == result and not (tmp_path / "j").is_dir()
    assert main(["analyze", "ffn", str(tmp_path / "base"), str(tmp_path / "nothing")]) == 2
    assert "not a shiftlens run directory" in capsys.readouterr().err
