"""Run-directory lifecycle (issue 16a): what a changed run says, --force, where a run may go, unit names, threads."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import tiny_model, tiny_tokenizer

from shiftlens.attribution.pipeline import attribute
from shiftlens.attribution.records import read_attribution_run
from shiftlens.attribution.settings import AttributionSettings
from shiftlens.cli.main import main
from shiftlens.examples import Example
from shiftlens.models import LoadedModel, ModelSpec
from shiftlens.storage import RunDirectory, Shard, StorageError, read_manifest, read_units

NESTED = {"k": 1, "settings": {"attribution": {"max_new_tokens": 60, "objective": "prob"}}}


def _changed(**attribution: object) -> dict:
    return {"k": 2, "settings": {"attribution": {**NESTED["settings"]["attribution"], **attribution}}}


def test_a_changed_setting_is_named_with_old_and_new_values_and_what_to_do(tmp_path) -> None:
    RunDirectory(tmp_path / "run", "demo", NESTED).close()
    with pytest.raises(StorageError) as refused:
        RunDirectory(tmp_path / "run", "demo", _changed(max_new_tokens=80))
    message = str(refused.value)
    assert "k: 1 → 2; settings.attribution.max_new_tokens: 60 → 80)" in message
    assert "objective" not in message  # only what changed
    assert "--force" in message and "new --out" in message and "\n" not in message


def test_a_longer_growing_list_extends_the_run_and_another_list_is_refused(tmp_path) -> None:
    RunDirectory(tmp_path, "demo", {"ids": ["a", "b"], "k": 1}, growing=("ids",)).close()
    RunDirectory(tmp_path, "demo", {"ids": ["a", "b", "c"], "k": 1}, growing=("ids",)).close()
    assert read_manifest(tmp_path)["params"]["ids"] == ["a", "b", "c"]  # the stored extent follows
    with pytest.raises(StorageError, match=r"ids: \['a', 'b', 'c'\] → \['a', 'c'\]"):
        RunDirectory(tmp_path, "demo", {"ids": ["a", "c"], "k": 1}, growing=("ids",))
    many = [f"id{i}" for i in range(10)]
    with pytest.raises(StorageError, match=r"ids: 3 items → 10 items \(first difference at \[0\]: 'a' → 'id0'\)"):
        RunDirectory(tmp_path, "demo", {"ids": many, "k": 1}, growing=("ids",))


def test_force_starts_over_after_saying_what_it_deletes(tmp_path, capsys) -> None:
    with RunDirectory(tmp_path / "run", "demo", {"k": 1}) as run:
        run.write_unit("a", {"x": 1}, {"m": np.ones(3, dtype=np.float32)})
    (tmp_path / "run" / "table.csv").write_text("x\n")
    with RunDirectory(tmp_path / "run", "demo", {"k": 2}, force=True) as run:
        assert run.unit_names() == [] and run.manifest["params"] == {"k": 2}
    said = capsys.readouterr().err.strip().splitlines()
    assert said == [f"shiftlens: --force: deleting {tmp_path / 'run'}'s run (manifest.json, table.csv, units/)"]
    with pytest.raises(StorageError, match="--force starts a whole run over"):
        RunDirectory(tmp_path / "run", "demo", {"k": 2}, force=True, shard=Shard(0, 2))


def test_force_never_deletes_a_folder_that_is_not_a_run(tmp_path) -> None:
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(StorageError, match=f"^{tmp_path} is not empty and holds no shiftlens run .*'notes.txt'"):
        RunDirectory(tmp_path, "demo", {}, force=True)
    assert [p.name for p in tmp_path.iterdir()] == ["notes.txt"]


def test_an_empty_out_is_refused_in_the_library_and_the_cli(tmp_path, monkeypatch, capsys) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(StorageError, match=r"^the output directory is empty \(--out ''\)"):
        RunDirectory("", "demo", {})
    with pytest.raises(StorageError, match="output directory is empty"):
        attribute(ModelSpec("organism-tuned"), [Example("a", "Hi.")], "")
    with pytest.raises(SystemExit) as ended:
        main(["heads", "--model", "organism-base", "--vocab", "v.tsv", "--out", ""])
    assert ended.value.code == 2 and "argument --out: is empty" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []  # nothing written into the current directory


def test_a_foreign_non_empty_directory_is_refused_before_the_model_loads(tmp_path, monkeypatch) -> None:
    (tmp_path / "photos").mkdir()
    (tmp_path / "photos" / "a.jpg").write_bytes(b"x")

    def refuse(*args, **kwargs):
        raise AssertionError("the model was loaded")

    monkeypatch.setattr("shiftlens.models.load.load_model", refuse)
    with pytest.raises(StorageError, match=f"^{tmp_path / 'photos'} is not empty and holds no shiftlens run"):
        attribute(ModelSpec("organism-tuned"), [Example("a", "Hi.")], tmp_path / "photos")
    assert [p.name for p in (tmp_path / "photos").iterdir()] == ["a.jpg"]


def test_only_files_a_run_opens_before_its_manifest_count_as_empty(tmp_path) -> None:
    from shiftlens.ffn.answer_cache import CACHE_FILE
    from shiftlens.runs import lifecycle

    assert CACHE_FILE in lifecycle.OPENED_BEFORE  # the LLM annotator's cache is opened before the run
    (tmp_path / CACHE_FILE).write_text("")
    (tmp_path / ".lock").write_text("")
    RunDirectory(tmp_path, "demo", {}).close()
    assert (tmp_path / "manifest.json").is_file()


def _loaded() -> LoadedModel:
    tokenizer = tiny_tokenizer()
    ids = {"bos_token_id": tokenizer.bos_token_id, "eos_token_id": tokenizer.eos_token_id}
    model = tiny_model("llama", vocab_size=len(tokenizer), max_position_embeddings=64, **ids)
    return LoadedModel(model, tokenizer, "tiny", "hash", "float32", "cpu")


def test_long_and_unsafe_ids_get_safe_bounded_unit_names_and_keep_their_id(tmp_path) -> None:
    from shiftlens.attribution.records import unit_name

    ids = ["x" * 300, "a/b: c", "../up", "x" * 299 + "y"]
    examples = [Example(i, "Define the word cat.", "A cat.", [(0, 6)]) for i in ids]
    attribute(_loaded(), examples, tmp_path / "run", AttributionSettings(max_new_tokens=2))
    names = sorted(p.name for p in (tmp_path / "run" / "units").iterdir())
    assert len(names) == 8 and all(len(n) <= 100 + len(".safetensors") for n in names)
    assert all("/" not in n and not n.startswith(".") for n in names)
    assert sorted(r.id for r in read_attribution_run(tmp_path / "run")[1]) == sorted(ids)
    assert unit_name("plain_id-1.x") == "plain_id-1.x"  # safe short ids keep their name


def test_the_manifest_records_threads_and_versions_and_a_resume_with_other_threads_says_so(tmp_path, capsys):
    before = torch.get_num_threads()
    RunDirectory(tmp_path, "demo", {}).close()
    manifest = read_manifest(tmp_path)
    assert manifest["threads"]["torch"] == before and "1e-9..1e-6" in manifest["threads"]["note"]
    assert {"python", "shiftlens", "torch", "numpy", "transformers"} <= set(manifest["versions"])
    capsys.readouterr()
    try:
        torch.set_num_threads(before + 1)
        RunDirectory(tmp_path, "demo", {}).close()
    finally:
        torch.set_num_threads(before)
    said = capsys.readouterr().err.strip().splitlines()
    assert len(said) == 1 and f"started with {before} torch threads and resumes with {before + 1}" in said[0]
    assert read_manifest(tmp_path)["threads"]["resumed_with"] == [before + 1]
    RunDirectory(tmp_path, "demo", {}).close()
    assert capsys.readouterr().err == ""  # the same count: nothing to say


def test_a_damaged_unit_inside_a_comparison_names_the_compare_command_to_rerun(tmp_path, monkeypatch):
    argv = ["/venv/bin/shiftlens", "compare", "a", "b", "--out", str(tmp_path / "cmp"), "--force"]
    monkeypatch.setattr(sys, "argv", argv)
    RunDirectory(tmp_path / "cmp", "compare", {}).close()
    monkeypatch.setattr(sys, "argv", ["pytest"])  # the step's run is written by the same process in truth
    with RunDirectory(tmp_path / "cmp" / "attribution" / "base", "attribution", {}) as run:
        run.write_unit("x", {}, {"m": np.ones(8, dtype=np.float32)})
    data = tmp_path / "cmp" / "attribution" / "base" / "units" / "x.safetensors"
    data.write_bytes(data.read_bytes()[:-1] + b"\x01")
    command = f"shiftlens compare a b --out {tmp_path / 'cmp'}"  # without --force
    with pytest.raises(StorageError, match=f"rerun `{command}` \\(the command that wrote {tmp_path / 'cmp'}\\)"):
        list(read_units(data.parent.parent))
    assert json.loads((tmp_path / "cmp" / "manifest.json").read_text())["command"] == command


def test_the_recorded_command_is_only_the_cli_s(monkeypatch) -> None:
    from shiftlens.runs import lifecycle

    program = str(Path("/x/src/shiftlens/cli/main.py"))
    monkeypatch.setattr(sys, "argv", [program, "heads", "--shard", "0/2", "--out", "o"])
    assert lifecycle.invocation() == "shiftlens heads --out o"
    monkeypatch.setattr(sys, "argv", ["/usr/bin/python", "script.py"])
    assert lifecycle.invocation() is None
