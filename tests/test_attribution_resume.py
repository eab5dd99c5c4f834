"""Speed settings are not run identity: a resume with another mode or memory budget reuses the stored units,
and each unit records the plan that computed it (mode, chunk, threads)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest
from conftest import save_tiny_model, tiny_model, tiny_tokenizer

from shiftlens.attribution.pipeline import attribute
from shiftlens.attribution.records import read_attribution_run, unit_name
from shiftlens.attribution.settings import AttributionSettings
from shiftlens.cli.main import main
from shiftlens.density import DensityParams
from shiftlens.examples import Example
from shiftlens.models import LoadedModel
from shiftlens.storage import StorageError, read_manifest

EXAMPLES = [
    Example("a", "Summarize the following text in one sentence.", "The cat sleeps on the mat all day long."),
    Example("b", "Define river.", "A river is a natural stream of water flowing towards an ocean or a lake."),
    Example("c", "Give a synonym of happy. Define the word river, then use it in a sentence.", "Glad."),
]


def _loaded() -> LoadedModel:
    tokenizer = tiny_tokenizer()
    ids = {"bos_token_id": tokenizer.bos_token_id, "eos_token_id": tokenizer.eos_token_id}
    model = tiny_model("llama", vocab_size=len(tokenizer), max_position_embeddings=128, **ids)
    return LoadedModel(model, tokenizer, "tiny", "hash-0", "float32", "cpu")


def test_resume_with_another_mode_reuses_the_stored_units(tmp_path, counted):
    lm, out = _loaded(), tmp_path / "run"
    attribute(lm, EXAMPLES[:2], out, AttributionSettings(mode="batched", memory_budget=1.2))
    assert len(counted) == 2
    params = read_manifest(out)["params"]
    first = {r.id: r for r in read_attribution_run(out)[1]}
    assert {r.extra["speed"]["mode"] for r in first.values()} == {"batched"}
    assert all(r.extra["speed"]["memory_budget"] == 1.2 and r.extra["speed"]["threads"] >= 1 for r in first.values())
    # resumes: only "c" is computed
    attribute(lm, EXAMPLES, out, AttributionSettings(mode="forward", memory_budget=3.0))
    assert len(counted) == 3
    manifest, records = read_attribution_run(out)
    assert manifest["params"] == params and not {"mode", "memory_budget", "chunk_size", "threads"} & set(params)
    assert manifest["summary"]["mode"] == "batched"  # the creating process's settings: recorded, never checked
    by_id = {r.id: r for r in records}
    for key in ("a", "b"):
        np.testing.assert_array_equal(by_id[key].attribution, first[key].attribution)
        assert by_id[key].extra["speed"] == first[key].extra["speed"]
    assert by_id["c"].extra["speed"]["mode"] == "forward" and by_id["c"].extra["speed"]["memory_budget"] == 3.0
    (out / "units" / f"{unit_name('a')}.json").unlink()
    attribute(lm, EXAMPLES, out, AttributionSettings(mode="auto"))
    again = {r.id: r for r in read_attribution_run(out)[1]}
    assert len(counted) == 4 and again["a"].extra["speed"]["mode"] in ("batched", "forward")
    rel = np.abs(again["a"].attribution - first["a"].attribution).max() / np.abs(first["a"].attribution).max()
    assert rel <= 1e-5  # another plan, the same matrix


def test_summary_settings_resume_and_identity_settings_are_refused_by_name(tmp_path, counted):
    lm, out = _loaded(), tmp_path / "run"
    examples = [Example("i", "Define the word river, then use it.", "A river is a stream.", ["Define the word"])]
    attribute(lm, examples, out, AttributionSettings(density=DensityParams(threshold=7)))
    params, first = read_manifest(out)["params"], (out / "summary.csv").read_text()
    assert "density" not in params and "mode" not in params and "objective" in params
    # density, mode, budget, chunk size, limit: recorded only; the stored matrix is reused
    other = AttributionSettings(density=DensityParams(threshold=0), mode="forward", memory_budget=4.0, chunk_size=2)
    attribute(lm, examples, out, other)
    assert len(counted) == 1 and read_manifest(out)["params"] == params
    assert (out / "summary.csv").read_text() != first  # the summary's score follows the new threshold
    with pytest.raises(StorageError, match=r"other settings \(objective: 'prob' → 'logprob'\)"):
        attribute(lm, examples, out, AttributionSettings(objective="logprob"))
    assert len(counted) == 1


def test_cli_mode_and_memory_budget_flags(tmp_path, capsys):
    save_tiny_model(tmp_path / "model")
    data = tmp_path / "data.jsonl"
    data.write_text(json.dumps({"id": "a", "prompt": "Define river.", "response": "A stream of water."}) + "\n")
    argv = ["attribute", "--model", str(tmp_path / "model"), "--data", str(data), "--out", str(tmp_path / "run")]
    assert main([*argv, "--mode", "forward", "--memory-budget", "2.5"]) == 0
    record = read_attribution_run(tmp_path / "run")[1][0]
    assert record.extra["speed"]["mode"] == "forward" and record.extra["speed"]["memory_budget"] == 2.5
    speed = read_manifest(tmp_path / "run")["summary"]
    assert speed["memory_budget"] == 2.5 and speed["omp_wait_policy"] == os.environ.get("OMP_WAIT_POLICY")
    capsys.readouterr()
    assert main([*argv, "--memory-budget", "0"]) == 2
    assert "--memory-budget must be positive, got 0.0" in capsys.readouterr().err


def test_the_cli_sets_the_openmp_wait_policy_before_torch_loads():
    """Importing `shiftlens.cli` sets OMP_WAIT_POLICY=PASSIVE before torch (and its OpenMP runtime) is loaded,
    and keeps a value the user set."""
    code = "import sys, os, shiftlens.cli; print('torch' in sys.modules, os.environ['OMP_WAIT_POLICY'])"
    env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    assert run.stdout.split() == ["False", "PASSIVE"]
    env["OMP_WAIT_POLICY"] = "ACTIVE"
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    assert run.stdout.split() == ["False", "ACTIVE"]
