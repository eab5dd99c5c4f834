"""A comparison's lifecycle (issue 16a): checked before its directory exists, extended, partly redone, repaired."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest

from shiftlens import organism
from shiftlens.attribution.records import read_attribution_run, unit_name
from shiftlens.attribution.settings import AttributionSettings
from shiftlens.cli.main import main
from shiftlens.compare import CompareSettings, compare
from shiftlens.errors import ShiftlensError
from shiftlens.ffn.annotation_settings import AnnotationSettings
from shiftlens.heads.settings import HeadsSettings
from shiftlens.storage import StorageError, read_units

README = Path(__file__).resolve().parents[1] / "README.md"
SMALL = CompareSettings(
    methods=("attribution", "heads"),
    layers=(0,),
    null_draws=0,
    annotator=None,
    attribution=AttributionSettings(limit=2, max_new_tokens=6),
)


def _run(out: Path, settings: CompareSettings, **kwargs) -> list[str]:
    messages: list[str] = []
    compare("organism-base", "organism-tuned", organism.prompts_path(), organism.vocab_path(), out, settings,
            messages.append, **kwargs)  # fmt: skip
    return messages


def _steps(messages: list[str]) -> list[str]:
    return [re.sub(r"^\[\d+/\d+\] ", "", m).split(" (")[0] for m in messages if m.startswith("[")]


def _mtimes(folder: Path) -> dict[Path, int]:
    return {p: p.stat().st_mtime_ns for p in folder.glob("units/*")}


def test_more_examples_extend_other_heads_settings_redo_only_heads_and_attribution_changes_are_refused(tmp_path):
    out = tmp_path / "cmp"
    _run(out, SMALL)
    stored = _mtimes(out / "attribution" / "base")
    more = replace(SMALL, layers=(0, 1), attribution=replace(SMALL.attribution, limit=3))
    more = replace(more, heads=replace(more.heads, top_k=20))
    messages = _run(out, more)
    assert _steps(messages) == [
        "attribution of the tuned model", "heads of the tuned model", "attribution of the base model",
        "heads of the base model",
    ]  # fmt: skip
    assert any(m.startswith("heads-tuned: settings changed (heads.top_k: 100 → 20)") for m in messages)
    assert not any(m.startswith("attribution-") for m in messages)  # extended, not redone
    assert {p: t for p, t in _mtimes(out / "attribution" / "base").items() if p in stored} == stored
    assert len(read_attribution_run(out / "attribution" / "base")[1]) == 3
    assert _steps(_run(out, more)) == []  # the same settings again: nothing to do
    changed = replace(more, attribution=replace(more.attribution, max_new_tokens=7))
    with pytest.raises(StorageError) as refused:
        _run(out, changed)
    assert "settings.attribution.max_new_tokens: 6 → 7" in str(refused.value) and "--force" in str(refused.value)
    assert _steps(_run(out, changed, force=True))[0] == "attribution of the tuned model"  # started over


def test_other_annotation_settings_redo_only_the_annotations(tmp_path):
    out = tmp_path / "cmp"
    settings = replace(SMALL, methods=("ffn",), annotator="lexical")
    assert _steps(_run(out, settings)) == [
        "ffn of the tuned model", "annotate of the tuned model", "ffn of the base model", "annotate of the base model"
    ]  # fmt: skip
    fewer = replace(settings, annotation=AnnotationSettings(n_words=5))
    assert _steps(_run(out, fewer)) == ["annotate of the tuned model", "annotate of the base model"]


def test_a_damaged_unit_anywhere_is_recomputed_by_rerunning_the_same_compare(tmp_path):
    out = tmp_path / "cmp"
    _run(out, SMALL)
    first = read_attribution_run(out / "attribution" / "base")[1][0]
    data = out / "attribution" / "base" / "units" / f"{unit_name(first.id)}.safetensors"
    raw = bytearray(data.read_bytes())
    raw[-3] ^= 0x10  # one flipped bit
    data.write_bytes(bytes(raw))
    with pytest.raises(StorageError, match=f"rerun the same compare command .* that wrote {out} to recompute"):
        read_attribution_run(out / "attribution" / "base")
    messages = _run(out, SMALL)
    assert _steps(messages) == ["attribution of the base model"]
    assert "attribution-base: 1 damaged units" in " ".join(messages)
    again = {r.id: r for r in read_attribution_run(out / "attribution" / "base")[1]}
    assert (again[first.id].attribution == first.attribution).all()  # recomputed exactly


def _cli(*args: str) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "shiftlens.cli.main", *args]
    return subprocess.run(command, capture_output=True, text=True, env=os.environ.copy())


@pytest.mark.skipif(__import__("torch").cuda.is_available(), reason="needs a machine without CUDA")
def test_a_failing_check_leaves_no_directory_and_the_corrected_command_runs(tmp_path):
    out = tmp_path / "cmp"
    argv = ["compare", "organism-base", "organism-tuned", "--data", str(organism.prompts_path())]
    argv += ["--vocab", str(organism.vocab_path()), "--out", str(out), "--methods", "heads", "--layers", "0"]
    argv += ["--null-draws", "0", "--annotator", "none"]
    assert main([*argv, "--device", "cuda"]) == 2
    assert not out.exists()  # refused before the comparison directory was created
    done = _cli(*argv)
    assert done.returncode == 0, done.stderr[-2000:]
    data = next((out / "heads" / "base" / "units").glob("*.safetensors"))
    data.write_bytes(data.read_bytes()[:-1] + bytes([data.read_bytes()[-1] ^ 1]))
    with pytest.raises(StorageError) as damaged:
        list(read_units(data.parent.parent))
    assert f"rerun `{shlex.join(['shiftlens', *argv])}` (the command that wrote {out})" in str(damaged.value)


def test_a_dead_annotator_is_refused_before_the_directory_exists(tmp_path, monkeypatch):
    def dead(kind, endpoint):
        raise ShiftlensError(f"{endpoint.endpoint} refused the connection")

    monkeypatch.setattr("shiftlens.compare.pipeline.check_annotator", dead)
    endpoint = replace(SMALL.endpoint, endpoint="http://127.0.0.1:9/v1", model="m")
    settings = replace(SMALL, methods=("ffn",), annotator="openai", endpoint=endpoint)
    with pytest.raises(ShiftlensError, match="refused the connection"):
        _run(tmp_path / "cmp", settings)
    assert not (tmp_path / "cmp").exists()


def test_the_readme_python_example_pasted_after_its_shell_example_extends_it():
    from shiftlens.cli.compare import compare_settings
    from shiftlens.cli.main import build_parser
    from shiftlens.compare.steps import GROWING, Steps, comparison_identity
    from shiftlens.examples import load_examples
    from shiftlens.models import ModelSpec
    from shiftlens.runs.changes import extends

    text = README.read_text(encoding="utf-8")
    shell = re.search(r"shiftlens compare organism-base organism-tuned \\\n(.*?)# the same", text, re.S).group(1)
    words = shlex.split(shell.replace("\\\n", " "))
    args = build_parser().parse_args(["compare", "organism-base", "organism-tuned", *words])
    python = re.search(r"(settings = CompareSettings\(.*?\))\nsummary = compare\(", text, re.S).group(1)
    scope = {"CompareSettings": CompareSettings, "AttributionSettings": AttributionSettings}
    exec(python, {**scope, "HeadsSettings": HeadsSettings}, scope)  # the README's own settings line
    identities, both = [], (compare_settings(args), scope["settings"])
    for settings in both:
        examples = load_examples(organism.prompts_path(), None, settings.attribution.limit)
        specs = {role: ModelSpec(f"organism-{role}") for role in ("base", "tuned")}
        identities.append(comparison_identity(specs, examples, settings))
    assert extends(*identities, GROWING)  # the comparison is extended, not refused
    steps = [Steps(Path("out"), [], organism.vocab_path(), settings, "none") for settings in both]
    assert steps[0].keys["ffn"] == steps[1].keys["ffn"]  # the FFN steps are kept
    assert steps[0].keys["heads"][0] != steps[1].keys["heads"][0]  # only the heads steps are redone
