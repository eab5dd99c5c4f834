"""`shiftlens compare` / `shiftlens demo`: every method on both models, same tokens, resume, refusals, report."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
from conftest import save_tiny_model
from support.prompts import SHORT_ROWS

from shiftlens import organism
from shiftlens.attribution.records import read_attribution_run
from shiftlens.attribution.settings import AttributionSettings
from shiftlens.cli.demo import demo_examples
from shiftlens.cli.main import main
from shiftlens.compare import CompareIncomplete, CompareSettings, TokenizerMismatch, compare, read_results
from shiftlens.compare import pipeline as compare_pipeline
from shiftlens.errors import ShiftlensError
from shiftlens.report import ComparisonView

STEPS = [f"{method}-{role}" for role in ("base", "tuned") for method in ("annotate", "attribution", "ffn", "heads")]
STEPS += ["null-baselines", "diff"]


@pytest.fixture(scope="module")
def demo_dir(tmp_path_factory):
    """A finished demo on its first 6 prompts (both tasks, both instruction positions)."""
    out = tmp_path_factory.mktemp("demo") / "run"
    assert main(["demo", "--out", str(out), "--limit", "6"]) == 0
    return out


def _records(path):
    return {r.id: r for r in read_attribution_run(path)[1]}


def test_both_models_explain_the_tuned_response_on_identical_tokens(demo_dir):
    base, tuned = _records(demo_dir / "attribution" / "base"), _records(demo_dir / "attribution" / "tuned")
    assert sorted(base) == sorted(tuned) and len(base) == 6
    for key, record in tuned.items():
        assert record.extra["response_source"] == "generated"
        assert base[key].extra["response_source"] == "run"
        assert base[key].response == record.response
        assert base[key].prompt_tokens == record.prompt_tokens
        assert base[key].response_tokens == record.response_tokens
        assert base[key].instruction_mask == record.instruction_mask
        assert base[key].attribution.shape == record.attribution.shape
        assert not np.array_equal(base[key].attribution, record.attribution)  # two different models


def test_both_models_are_wrapped_in_the_tuned_chat_template(demo_dir):
    manifests = [json.loads((demo_dir / "attribution" / r / "manifest.json").read_text()) for r in ("base", "tuned")]
    formats = [m["chat_format"] for m in manifests]
    assert formats[0] == formats[1] and formats[0]["template"] is not None
    assert (demo_dir / "chat_template.jinja").read_text() == organism_template()


def organism_template() -> str:
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(organism.model_dir("tuned")).chat_template


def test_every_step_analysis_and_the_report_are_written(demo_dir):
    assert sorted(p.stem for p in (demo_dir / "units").glob("*.json")) == sorted(STEPS)
    for path in (
        "analysis/instructions/table2.csv",
        "analysis/heads/table3.csv",
        "analysis/ffn/ffn_analysis.json",
        "ffn/base/annotations/labels.parquet",
        "report.html",
    ):
        assert (demo_dir / path).is_file(), path
    results = json.loads((demo_dir / "results.json").read_text())
    instructions = results["instructions"]
    short = instructions["excluded"]["short_response"]["base"]  # the demo's minimum is 4 ("I eat bread." counts)
    assert not short and instructions["table2"]["all"]["base"]["n"] == 6
    table1 = instructions["table1"]["all"]  # the demo's prompts carry no ratings: the tuned model's replies are new
    assert table1["followed"]["n"] == table1["unfollowed"]["n"] == 0
    assert results["heads"]["groups"] and results["ffn"]["annotations"]["heuristic"] is True
    assert results["meta"]["tokenizers"] == "identical"
    assert [m["role"] for m in results["meta"]["models"]] == ["base", "tuned"]
    assert all(len(m["weight_hash"]) > 8 for m in results["meta"]["models"])
    assert results["ffn"]["components"] < results["ffn"]["hidden"] / 2  # a rotation that can be non-zero
    assert all(r["rotation_null"]["draws"] == 20 for r in results["ffn"]["rotation_by_layer"])
    layers = list(range(json.loads((organism.model_dir("base") / "config.json").read_text())["n_layer"]))
    assert [b["layer"] for b in results["heads"]["head_overlap_null"]] == layers
    findings = results["findings"]
    assert {f["method"] for f in findings} == {"attribution", "heads", "ffn", "diff"}
    assert results["diff"]["modules"] and results["diff"]["tokens"]["examples"] == 6
    assert (demo_dir / "diff" / "weights.parquet").is_file() and (
        demo_dir / "diff" / "tokens" / "tokens.parquet"
    ).is_file()
    for finding in findings:  # no p-value where no test was possible; adjusted over all headlines
        assert (finding["p_value"] is None) == (not finding["testable"]), finding
        assert finding["testable"] or finding["reason"]
    html = (demo_dir / "report.html").read_text()
    assert "organism-base" in html and "organism-tuned" in html and "not run" not in html
    assert "http://" not in html.replace("http://www.w3.org", "") and "https://" not in html


def test_rerun_resumes_without_loading_a_model_or_recomputing(demo_dir, monkeypatch, capsys):
    units = {p: p.stat().st_mtime_ns for p in demo_dir.glob("*/*/units/*")}

    def refuse(*args, **kwargs):
        raise AssertionError("a finished comparison loaded a model")

    monkeypatch.setattr("shiftlens.models.load.load_model", refuse)  # what ModelSpec.load calls
    assert main(["demo", "--out", str(demo_dir), "--limit", "6"]) == 0
    assert not re.search(r"^\[\d+/8\]", capsys.readouterr().err, re.M)  # no step ran
    assert {p: p.stat().st_mtime_ns for p in demo_dir.glob("*/*/units/*")} == units


def test_an_unfinished_step_is_the_only_one_rerun(demo_dir, tmp_path):
    import shutil

    out = tmp_path / "copy"
    shutil.copytree(demo_dir, out)
    (out / "units" / "heads-base.json").unlink()
    shutil.rmtree(out / "heads" / "base")
    messages: list[str] = []
    settings = CompareSettings(
        instruction_verbs=tuple(organism.instruction_verbs()),
        attribution=AttributionSettings(limit=6, max_new_tokens=60),
    )
    compare(
        "organism-base",
        "organism-tuned",
        demo_examples(),
        organism.vocab_path(),
        out,
        settings,
        messages.append,
    )
    assert [m for m in messages if m.startswith("[")] == ["[6/8] heads of the base model (organism-base)"]
    assert (out / "heads" / "base" / "heads.parquet").is_file()


def test_other_settings_in_the_same_directory_are_refused(demo_dir):
    assert main(["demo", "--out", str(demo_dir), "--limit", "5"]) == 2


def test_notebook_view_renders_the_saved_results(demo_dir):
    results = read_results(demo_dir)
    assert len(results["examples"]["examples"]) == 6
    html = ComparisonView(results)._repr_html_()
    assert "sl-explorer-root" in html and "Attention heads" in html
    summary = compare_pipeline.CompareSummary(demo_dir, demo_dir / "report.html", demo_dir / "results.json")
    assert "sl-explorer-root" in summary._repr_html_()  # what `compare(...)` returns renders in Jupyter


@pytest.fixture()
def short_data(tmp_path):
    rows = list(SHORT_ROWS)
    path = tmp_path / "data.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_different_tokenizers_are_refused_with_what_cannot_be_compared(tmp_path, short_data):
    tiny = tmp_path / "tiny"
    save_tiny_model(tiny)
    with pytest.raises(TokenizerMismatch, match="vocabularies differ.*heatmaps.*--allow-different-tokenizers"):
        compare(str(tiny), "organism-tuned", short_data, organism.vocab_path(), tmp_path / "out")
    assert not (tmp_path / "out").exists()  # refused before any work


def test_different_tokenizers_run_when_allowed_and_the_report_says_so(tmp_path, short_data):
    tiny = tmp_path / "tiny"
    save_tiny_model(tiny)
    settings = CompareSettings(responses="data", methods=("attribution",), allow_different_tokenizers=True)
    summary = compare(str(tiny), "organism-tuned", short_data, organism.vocab_path(), tmp_path / "out", settings)
    results = json.loads(summary.results.read_text())
    assert results["meta"]["tokenizers"].startswith("DIFFERENT (vocabularies differ")
    assert results["heads"] is None and results["ffn"] is None
    base, tuned = (
        _records(tmp_path / "out" / "attribution" / "base"),
        _records(tmp_path / "out" / "attribution" / "tuned"),
    )
    assert base["a"].response == tuned["a"].response == "A cat."
    assert base["a"].prompt_tokens != tuned["a"].prompt_tokens
    assert "DIFFERENT" in summary.report.read_text()


@pytest.mark.parametrize(("responses", "base_source"), [("data", "data"), ("each", "generated")])
def test_response_modes(tmp_path, short_data, responses, base_source):
    settings = CompareSettings(
        responses=responses, methods=("attribution",), attribution=AttributionSettings(max_new_tokens=8)
    )
    compare("organism-base", "organism-tuned", short_data, organism.vocab_path(), tmp_path / "out", settings)
    base = _records(tmp_path / "out" / "attribution" / "base")
    tuned = _records(tmp_path / "out" / "attribution" / "tuned")
    assert {r.extra["response_source"] for r in base.values()} == {base_source}
    assert {r.extra["response_source"] for r in tuned.values()} == {base_source}
    if responses == "data":
        assert base["b"].response == tuned["b"].response == "Hound."


def test_a_failing_example_is_reported_after_everything_else_is_stored(tmp_path, short_data):
    too_long = {"id": "c", "prompt": "word " * 300, "response": "Yes."}  # beyond the organism's context length
    short_data.write_text(short_data.read_text() + json.dumps(too_long) + "\n")
    settings = CompareSettings(responses="data", methods=("attribution",))
    args = ("organism-base", "organism-tuned", short_data, organism.vocab_path(), tmp_path / "out", settings)
    with pytest.raises(CompareIncomplete, match="1 for the tuned model.*1 for the base model.*Rerun"):
        compare(*args)
    assert (tmp_path / "out" / "report.html").is_file()
    assert sorted(_records(tmp_path / "out" / "attribution" / "base")) == ["a", "b"]
    messages: list[str] = []
    with pytest.raises(CompareIncomplete):
        compare(*args, log=messages.append)  # only the failed example is retried: the steps stay unfinished
    assert "[1/2] attribution of the tuned model (organism-tuned)" in messages


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--methods", "attribution,bogus"], "methods must be among"),
        (["--annotator", "openai"], "needs --annotator-endpoint and --annotator-model"),
        (["--min-response-tokens", "0"], "--min-response-tokens must be at least 1, got 0"),
    ],
)
def test_bad_options_are_clear_errors(tmp_path, short_data, capsys, argv, message):
    command = ["compare", "organism-base", "organism-tuned", "--data", str(short_data)]
    command += ["--vocab", str(organism.vocab_path()), "--out", str(tmp_path / "out"), "--methods", "ffn"]
    assert main(command + argv) == 2
    assert message in capsys.readouterr().err


def test_missing_vocabulary_is_a_clear_error(tmp_path, short_data):
    with pytest.raises(ShiftlensError, match="vocabulary file .* does not exist"):
        compare("organism-base", "organism-tuned", short_data, tmp_path / "nope.tsv", tmp_path / "out")
