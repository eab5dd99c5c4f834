"""The rotation null: base vs base + tuning-sized noise, beside the observed base → tuned rotation."""

from __future__ import annotations

import copy
import json

import numpy as np
import pytest
import torch
from conftest import save_tiny_model, tiny_model, tiny_tokenizer
from scipy import stats as scipy_stats

from shiftlens.analysis.ffn import analyze_ffn
from shiftlens.architecture import ffn_down_rows
from shiftlens.cli.main import main
from shiftlens.errors import ShiftlensError
from shiftlens.ffn.core import principal_components
from shiftlens.ffn.pipeline import explain_ffn
from shiftlens.ffn.rotation import empirical_p, null_angles, principal_angles_deg, rotation_finding
from shiftlens.ffn.settings import FfnSettings
from shiftlens.models import LoadedModel, ModuleWeights
from shiftlens.nulls import perturb_like, seeded_generators

R = 6  # hidden 32: R < 16


@pytest.fixture(scope="module")
def vocab(tmp_path_factory):
    path = tmp_path_factory.mktemp("vocab") / "vocab.tsv"
    words = ["the", "sea", "cat", "poem", "text", "word", "river", "happy", "French", "sentence", "mat", "short"]
    path.write_text("".join(f"{w}\t1\n" for w in words))
    return path


TOKENIZER = tiny_tokenizer()


def base_model() -> torch.nn.Module:
    """A tiny Llama (hidden 32, intermediate 48, 2 layers) matching the tiny tokenizer."""
    return tiny_model("llama", seed=0, vocab_size=len(TOKENIZER), bos_token_id=0, eos_token_id=1)


def loaded(model, name: str) -> LoadedModel:
    return LoadedModel(model, TOKENIZER, name, f"hash-{name}", "float32", "cpu")


def tuned_from(base, rows_of_layer) -> torch.nn.Module:
    """A copy of ``base`` whose layer-l down-projection rows are ``rows_of_layer(l, rows)``."""
    tuned = copy.deepcopy(base)
    for layer, block in enumerate(tuned.model.layers):
        rows = ffn_down_rows(ModuleWeights(base), base.config, layer)
        block.mlp.down_proj.weight.copy_(rows_of_layer(layer, rows).T)
    return tuned


def analyzed(base, tuned, tmp_path, vocab, draws=39):
    pair = loaded(base, "base"), loaded(tuned, "tuned")
    for model in pair:
        explain_ffn(model, vocab, tmp_path / model.name, FfnSettings(components=R, top_k=3))
    return analyze_ffn(tmp_path / "base", tmp_path / "tuned", null_models=pair, null_draws=draws)


def test_a_random_update_of_the_tunings_size_sits_inside_the_null_band(tmp_path, vocab):
    """Tuned = base + random noise: observed is exchangeable with the null draws (outside: 2 / 40 a layer)."""
    base = base_model()
    generator = torch.Generator().manual_seed(1234)
    tuned = tuned_from(base, lambda _, rows: perturb_like(rows, 1.3 * rows, generator))
    result = analyzed(base, tuned, tmp_path, vocab)
    for row in result["rotation_by_layer"]:
        band = row["rotation_null"]
        assert band["draws"] == 39 and len(band["angles_deg"]) == 39
        assert band["low_deg"] <= row["mean_principal_angle_deg"] <= band["high_deg"]
        assert band["position"] == "inside" and band["observed_deg"] == row["mean_principal_angle_deg"]
        assert band["low_deg"] > 1.0  # the noise really moves the subspace: the band is not trivially [0, 0]
    finding = result["rotation_null"]["finding"]
    assert finding["testable"] and not finding["significant"]
    assert result["finding"][-1] == finding


def test_a_structured_rotation_of_the_top_subspace_falls_above_the_band(tmp_path, vocab):
    """Tuned turns each layer's top axes 60° towards its weakest ones: more than noise of that size does.

    (A random tiny model's spectrum is nearly flat, so noise alone moves its top subspace 30–47°; 25° is
    inside that band, which is the point of showing it.)
    """
    base = base_model()

    def rotate(layer, rows):
        axes = torch.linalg.svd(rows - rows.mean(0), full_matrices=False).Vh  # principal axes, strongest first
        theta = np.radians(60.0)
        turn = torch.eye(rows.shape[1])
        for i in range(R):  # axis i towards axis -(i + 1), a plane rotation each
            a, b = axes[i], axes[-(i + 1)]
            plane = torch.outer(a, a) + torch.outer(b, b)
            mix = torch.outer(b, a) - torch.outer(a, b)
            turn = turn + (np.cos(theta) - 1) * plane + np.sin(theta) * mix
        return rows @ turn.T

    result = analyzed(base, tuned_from(base, rotate), tmp_path, vocab)
    for row in result["rotation_by_layer"]:
        assert row["mean_principal_angle_deg"] == pytest.approx(60.0, abs=1e-3)
        assert row["rotation_null"]["position"] == "above"
        assert row["mean_principal_angle_deg"] > row["rotation_null"]["high_deg"]
    finding = result["rotation_null"]["finding"]
    # p: one more draw as far from the draws' mean (t prediction interval, K = 39), finer than their rank p 2 / 40
    null = np.mean([row["rotation_null"]["angles_deg"] for row in result["rotation_by_layer"]], axis=0)
    observed = np.mean([row["mean_principal_angle_deg"] for row in result["rotation_by_layer"]])
    t = (observed - null.mean()) / (null.std(ddof=1) * np.sqrt(1 + 1 / null.size))
    assert finding["testable"] and finding["p_value"] == pytest.approx(2 * scipy_stats.t.sf(t, null.size - 1))
    assert finding["p_value"] < 2 / 40 and finding["effect_size"] > 0


def test_null_angles_written_out_and_zero_for_no_update():
    base = base_model()
    rows = ffn_down_rows(ModuleWeights(base), base.config, 0)
    assert null_angles(rows, rows, R, seeded_generators(3)) == pytest.approx([0, 0, 0], abs=1e-5)  # no update, no noise
    tuned = rows + 0.1 * torch.randn(rows.shape, generator=torch.Generator().manual_seed(0))
    angles = null_angles(rows, tuned, R, seeded_generators(2, start=7))
    reference = principal_components(rows, R).components.numpy()
    for angle, generator in zip(angles, seeded_generators(2, start=7)):
        moved = principal_components(perturb_like(rows, tuned, generator), R).components.numpy()
        assert angle == pytest.approx(principal_angles_deg(reference, moved).mean(), abs=1e-12)
    with pytest.raises(ShiftlensError, match="rotation needs R < hidden/2"):
        null_angles(rows, tuned, 16, seeded_generators(1))


def test_monte_carlo_p_and_too_few_draws():
    assert empirical_p(5.0, [1.0, 2.0, 3.0]) == 2 * 1 / 4
    assert empirical_p(2.0, [1.0, 2.0, 3.0]) == 1.0
    rows = [{"mean_principal_angle_deg": 3.0, "rotation_null": {"angles_deg": [1.0, 2.0, 1.5]}}]
    finding = rotation_finding(rows)
    assert not finding.testable and finding.reason == "null draws: side 1: n = 3 < 5"


def test_the_null_refuses_other_weights_than_the_runs_explained(tmp_path, vocab):
    base = base_model()
    for name in ("base", "tuned"):
        explain_ffn(loaded(base, name), vocab, tmp_path / name, FfnSettings(components=R, top_k=3))
    impostor = loaded(base, "other")
    with pytest.raises(ShiftlensError, match="the tuned model other .* is not the one"):
        analyze_ffn(tmp_path / "base", tmp_path / "tuned", null_models=(loaded(base, "base"), impostor), null_draws=2)


def test_cli_null_draws_load_the_models_the_runs_name(tmp_path, vocab, capsys):
    for name, seed in (("base", 0), ("tuned", 1)):
        save_tiny_model(tmp_path / f"model-{name}", "llama", seed=seed)
        args = ["ffn", "--model", str(tmp_path / f"model-{name}"), "--vocab", str(vocab)]
        assert main([*args, "--out", str(tmp_path / name), "--components", "4"]) == 0
    capsys.readouterr()
    command = ["analyze", "ffn", str(tmp_path / "base"), str(tmp_path / "tuned"), "--null-draws", "5"]
    assert main([*command, "--json", str(tmp_path / "r.json"), "--out", str(tmp_path / "fig")]) == 0
    out = capsys.readouterr().out
    assert "null angle° [min, max]" in out and "random updates of the tuning's size (5 draws)" in out
    result = json.loads((tmp_path / "r.json").read_text())
    assert [len(row["rotation_null"]["angles_deg"]) for row in result["rotation_by_layer"]] == [5, 5]
    assert result["rotation_null"]["finding"]["testable"]
    assert (tmp_path / "fig" / "ffn_rotation.svg").exists()
