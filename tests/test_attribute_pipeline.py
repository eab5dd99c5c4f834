"""The attribution pipeline and CLI: stored records, resume without recompute, failures kept apart."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
from conftest import save_tiny_model, tiny_model, tiny_tokenizer

from shiftlens.attribution import core
from shiftlens.attribution.pipeline import RunFailures, attribute
from shiftlens.attribution.records import read_attribution_run, unit_name
from shiftlens.attribution.settings import AttributionSettings
from shiftlens.cli.main import main
from shiftlens.errors import ShiftlensError
from shiftlens.examples import Example
from shiftlens.models import LoadedModel
from shiftlens.prompting import build_sequence, chat_format
from shiftlens.storage import StorageError

EXAMPLES = [
    Example("user_oriented_task_1", "Summarize the following text in one sentence.", "The cat sleeps.", ["Summarize"]),
    Example("lima_author_2", "Write a short poem about the sea.", None, [(0, 5)], ["the sea"], rating=4.0),
    Example("mtbench_x_3", "Give a synonym of happy. Define the word river.", "Glad. A stream.", ["Define"]),
]


def loaded(seed: int = 0, context: int = 64) -> LoadedModel:
    tokenizer = tiny_tokenizer()
    ids = {"bos_token_id": tokenizer.bos_token_id, "eos_token_id": tokenizer.eos_token_id}
    model = tiny_model("llama", seed=seed, vocab_size=len(tokenizer), max_position_embeddings=context, **ids)
    return LoadedModel(model, tokenizer, f"tiny-{seed}", f"hash-{seed}", "float32", "cpu")


def test_records_match_the_core_and_the_spans(tmp_path, counted):
    lm = loaded()
    out = attribute(lm, EXAMPLES, tmp_path / "run", AttributionSettings(max_new_tokens=4))
    manifest, records = read_attribution_run(out)
    assert manifest["params"]["objective"] == "prob" and manifest["model"]["weight_hash"] == "hash-0"
    assert manifest["counts"] == {"examples": 3, "stored": 3, "failed": 0} and manifest["failed"] == {}
    by_id = {r.id: r for r in records}
    fmt = chat_format(lm.tokenizer, "auto", lm.model)
    for example in EXAMPLES:
        record = by_id[example.id]
        seq = build_sequence(lm.model, fmt, lm.tokenizer, example.prompt, record.response, example.id)
        expected = core.attribute(lm.model, seq.input_ids, seq.prompt_positions, seq.response_positions)
        np.testing.assert_array_equal(record.attribution, expected.numpy())
        assert record.prompt_tokens == seq.prompt.tokens and record.response_tokens == seq.response.tokens
        assert record.rating == example.rating
    assert [
        t
        for t, m in zip(by_id["user_oriented_task_1"].prompt_tokens, by_id["user_oriented_task_1"].instruction_mask)
        if m
    ] == ["Su", "mm", "ari", "ze"]
    assert by_id["user_oriented_task_1"].group == "self_instruct" and by_id["mtbench_x_3"].group == "mt_bench"
    generated = by_id["lima_author_2"]
    assert generated.extra["response_source"] == "generated" and 1 <= len(generated.response_tokens) <= 6
    assert generated.extra["context_spans"] == [[25, 32]] and generated.instruction_spans == [(0, 5)]
    with (out / "summary.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert [r["id"] for r in rows] == [e.id for e in EXAMPLES] and {r["status"] for r in rows} == {"ok"}
    assert int(rows[0]["n_prompt"]) == len(by_id["user_oriented_task_1"].prompt_tokens)
    assert 0 < float(rows[0]["instruction_score"])


def test_resume_computes_nothing_twice(tmp_path, counted):
    lm = loaded()
    attribute(lm, EXAMPLES, tmp_path / "run", AttributionSettings(max_new_tokens=3))
    assert len(counted) == 3
    first = {r.id: r.attribution for r in read_attribution_run(tmp_path / "run")[1]}
    attribute(lm, EXAMPLES, tmp_path / "run", AttributionSettings(max_new_tokens=3))
    assert len(counted) == 3
    (tmp_path / "run" / "units" / f"{unit_name('mtbench_x_3')}.json").unlink()
    attribute(lm, EXAMPLES, tmp_path / "run", AttributionSettings(max_new_tokens=3))
    assert len(counted) == 4
    again = {r.id: r.attribution for r in read_attribution_run(tmp_path / "run")[1]}
    for key, value in first.items():
        np.testing.assert_array_equal(again[key], value)
    with pytest.raises(StorageError, match="other settings \\(objective: 'prob' → 'logit'\\)"):
        attribute(lm, EXAMPLES, tmp_path / "run", AttributionSettings(max_new_tokens=3, objective="logit"))
    with pytest.raises(StorageError, match="other settings \\(model.weight_hash: "):
        attribute(loaded(seed=1), EXAMPLES, tmp_path / "run", AttributionSettings(max_new_tokens=3))


def test_failures_are_recorded_and_finished_work_kept(tmp_path, counted):
    bad = [
        EXAMPLES[0],
        Example("too_long", "Give a synonym of happy.", "x " * 80, ["Give"]),
        Example("no_span", "Define the word river.", "A stream.", ["ocean"]),
        Example("empty", "Define the word river.", "   ", ["Define"]),
        EXAMPLES[2],
    ]
    with pytest.raises(RunFailures, match="3 of 5 examples failed") as info:
        attribute(loaded(), bad, tmp_path / "run")
    assert set(info.value.failed) == {"too_long", "no_span", "empty"}
    manifest, records = read_attribution_run(tmp_path / "run")
    assert sorted(r.id for r in records) == ["mtbench_x_3", "user_oriented_task_1"]
    assert "longer than the model's context of 64" in manifest["failed"]["too_long"]
    assert "span 'ocean' not found" in manifest["failed"]["no_span"]
    assert "empty response" in manifest["failed"]["empty"]
    with (tmp_path / "run" / "summary.csv").open() as handle:
        status = {r["id"]: (r["status"], r["error"]) for r in csv.DictReader(handle)}
    assert status["no_span"][0] == "failed" and "ocean" in status["no_span"][1] and status["mtbench_x_3"][0] == "ok"
    calls = len(counted)
    fixed = [bad[0], Example("too_long", "Give a synonym of happy.", "Glad.", ["Give"]), bad[4]]
    attribute(loaded(), fixed, tmp_path / "run")
    assert len(counted) == calls + 1  # only the fixed example is computed
    assert json.loads((tmp_path / "run" / "manifest.json").read_text())["failed"] == {}


def test_responses_from_another_run_and_ratings(tmp_path):
    tuned = attribute(loaded(seed=0), EXAMPLES, tmp_path / "tuned", AttributionSettings(max_new_tokens=4))
    ratings = tmp_path / "ratings.tsv"
    ratings.write_text(
        "File\tModel\tPrompt\tReference\tInstruct\tResponse\tRating\nmtbench_x_3.pkl\tm\tp\tr\ti\tresp\t2\n"
    )
    base = attribute(
        loaded(seed=1),
        EXAMPLES,
        tmp_path / "base",
        AttributionSettings(responses_from=tuned, ratings=ratings, chat_template="none"),
    )
    tuned_records = {r.id: r for r in read_attribution_run(tuned)[1]}
    for record in read_attribution_run(base)[1]:
        other = tuned_records[record.id]
        assert record.response == other.response and record.response_tokens == other.response_tokens
        assert record.prompt_tokens == other.prompt_tokens and record.extra["response_source"] == "run"
        assert not np.array_equal(record.attribution, other.attribution)
    assert {r.id: r.rating for r in read_attribution_run(base)[1]}["mtbench_x_3"] == 2.0
    with pytest.raises(RunFailures, match="new: example 'new': no response for it in --responses-from"):
        attribute(
            loaded(seed=1),
            [Example("new", "Hi there.", None)],
            tmp_path / "b2",
            AttributionSettings(responses_from=tuned),
        )


def test_bad_options_fail_before_any_work(tmp_path):
    lm = loaded()
    with pytest.raises(ShiftlensError, match="--objective must be one of prob, logprob, logit, got 'grad'"):
        attribute(lm, EXAMPLES, tmp_path / "a", AttributionSettings(objective="grad"))
    with pytest.raises(Exception, match="--chat-template takes auto, none or a Jinja file"):
        attribute(lm, EXAMPLES, tmp_path / "b", AttributionSettings(chat_template="chatml"))
    with pytest.raises(Exception, match="duplicate example ids"):
        attribute(lm, [EXAMPLES[0], EXAMPLES[0]], tmp_path / "c")
    with pytest.raises(Exception, match="--limit must be at least 1"):
        attribute(lm, EXAMPLES, tmp_path / "d", AttributionSettings(limit=0))
    with pytest.raises(Exception, match="not a shiftlens run directory"):
        attribute(lm, EXAMPLES, tmp_path / "e", AttributionSettings(responses_from=tmp_path / "nowhere"))
    assert not any((tmp_path / name).exists() for name in "abcde")


def test_cli_end_to_end_on_a_saved_tiny_model(tmp_path, capsys):
    save_tiny_model(tmp_path / "model")
    data = tmp_path / "data.jsonl"
    data.write_text(
        json.dumps({"id": "a", "prompt": "Write a short poem about the sea.", "instruction": ["Write"]})
        + "\n"
        + json.dumps({"id": "b", "prompt": "Define the word river.", "response": "A stream."})
        + "\n"
    )
    argv = ["attribute", "--model", str(tmp_path / "model"), "--data", str(data), "--out", str(tmp_path / "run")]
    assert main([*argv, "--max-new-tokens", "3", "--objective", "logprob", "--limit", "1"]) == 0
    assert [r.id for r in read_attribution_run(tmp_path / "run")[1]] == ["a"]
    assert main([*argv, "--max-new-tokens", "3", "--objective", "logprob"]) == 0
    assert sorted(r.id for r in read_attribution_run(tmp_path / "run")[1]) == ["a", "b"]
    capsys.readouterr()
    assert main([*argv, "--max-new-tokens", "3"]) == 2  # other parameters than the stored run
    last = capsys.readouterr().err.splitlines()[-1]  # (transformers' loading bar may precede it)
    assert last.startswith("shiftlens: error: ") and "other settings (objective: 'logprob' → 'prob')" in last
    data.write_text('{"id": "a", "prompt": ""}\n')
    assert main([*argv]) == 2 and f"{data}:1: field 'prompt' is empty" in capsys.readouterr().err


@pytest.mark.slow
def test_smollm2_end_to_end(tmp_path, smollm2):
    from shiftlens.models import BUILTIN_MODELS

    assert "smollm2" in BUILTIN_MODELS
    data = tmp_path / "data.jsonl"
    data.write_text(
        json.dumps(
            {
                "id": "given",
                "prompt": "Name a color.\nAnswer briefly.",
                "response": "Blue.",
                "instruction": ["Name a color."],
            }
        )
        + "\n"
        + json.dumps({"id": "gen", "prompt": "Say hello in French.", "instruction": [[0, 20]]})
        + "\n"
    )
    out = tmp_path / "run"
    assert (
        main(["attribute", "--model", "smollm2", "--data", str(data), "--out", str(out), "--max-new-tokens", "4"]) == 0
    )
    manifest, records = read_attribution_run(out)
    by_id = {r.id: r for r in records}
    tokenizer = smollm2.tokenizer
    given = by_id["given"]
    assert given.prompt_tokens == [given.prompt[a:b] for a, b in given.prompt_offsets]
    assert tokenizer.decode(tokenizer(given.prompt, add_special_tokens=False)["input_ids"]) == given.prompt
    assert len(given.prompt_tokens) == len(tokenizer(given.prompt, add_special_tokens=False)["input_ids"])
    assert given.response == "Blue." and given.attribution.shape == (
        len(given.prompt_tokens),
        len(given.response_tokens),
    )
    assert np.isfinite(given.attribution).all() and np.abs(given.attribution).sum() > 0
    assert sum(given.instruction_mask) >= 3 and not given.instruction_mask[-1]
    gen = by_id["gen"]
    assert gen.extra["response_source"] == "generated" and 1 <= len(gen.response_tokens) <= 6
    assert all(gen.instruction_mask) and manifest["model"]["name"] == "smollm2"
    assert "<|im_start|>" in manifest["chat_format"]["template"]
