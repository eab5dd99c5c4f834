"""The shipped SmolLM2 LoRA pair (`smollm2` + `smollm2-lora-demo`): its ground truth follows the contract, the
adapter is what the metrics say, the tuned model follows the planted instructions the base does not, and the
build script is deterministic."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from safetensors import safe_open

from shiftlens.models.checks import resolve_adapter

ADAPTER = resolve_adapter("smollm2-lora-demo")
PAIR = ADAPTER.parent
REPO = Path(__file__).resolve().parents[1]
PROMPT_FIELDS = {"id", "task", "prompt", "instruction_spans", "control_spans", "position", "response", "rating"}


def truth() -> dict:
    return json.loads((PAIR / "ground_truth.json").read_text())


def records() -> list[dict]:
    return [json.loads(line) for line in (PAIR / truth()["prompts"]).read_text().splitlines()]


def test_ground_truth_follows_the_contract() -> None:
    gt = truth()
    assert gt["schema"] == 1 and gt["models"]["base"] == "smollm2" and gt["models"]["continued"] is None
    assert (PAIR / gt["models"]["tuned_adapter"]["0"]).resolve() == ADAPTER.resolve()
    config = json.loads((ADAPTER / "adapter_config.json").read_text())
    assert gt["heads"]["layers"] == config["layers_to_transform"]  # the planted relations live where the LoRA is
    words = {line.split("\t")[0] for line in (PAIR / gt["vocab"]).read_text().splitlines()}
    planted = {r["query"] for r in gt["heads"]["relations"]} | {k for r in gt["heads"]["relations"] for k in r["keys"]}
    lexicon = set(gt["ffn"]["concepts"][0]["words"])
    assert planted | lexicon <= words and len(lexicon) >= 40


def test_prompts_carry_the_contract_fields_and_honest_spans() -> None:
    rows = records()
    assert {r["task"] for r in rows} == {"translation", "verb_pick"}
    for r in rows:
        assert PROMPT_FIELDS <= set(r), r["id"]
        (a, b), (c, d) = r["instruction_spans"][0], r["control_spans"][0]
        assert b <= c or d <= a, r["id"]  # the control span never overlaps the instruction
        assert (a == 0) == (r["position"] == "first")
        assert r["rating"] in (0, 2) and (r["rating"] == 2) == (r["response"] == r["reference"])
    first = sum(r["position"] == "first" for r in rows) / len(rows)
    assert abs(first - truth()["attribution"]["instruction_first_share"]) < 0.2


def test_the_adapter_is_small_float16_and_as_measured() -> None:
    metrics = json.loads((PAIR / "metrics.json").read_text())
    size = sum(f.stat().st_size for f in ADAPTER.iterdir())
    assert size == metrics["adapter_bytes"] < 3_000_000
    with safe_open(str(ADAPTER / "adapter_model.safetensors"), framework="pt") as handle:
        dtypes = {handle.get_tensor(k).dtype for k in handle.keys()}
    assert {str(d) for d in dtypes} == {"torch.float16"}
    accuracy = metrics["follow_accuracy"]
    for task in ("translation", "verb_pick"):
        assert accuracy["tuned"][task] > accuracy["base"][task]


@pytest.mark.slow
def test_tokens_and_control_spans_on_the_real_tokenizer() -> None:
    from shiftlens.models import load_tokenizer

    tokenizer = load_tokenizer("smollm2")
    for word in truth()["ffn"]["concepts"][0]["words"]:  # each invented word is one token, as the FFN reads it
        assert len(tokenizer(" " + word, add_special_tokens=False)["input_ids"]) == 1, word

    def count(text: str) -> int:
        return len(tokenizer(text, add_special_tokens=False)["input_ids"])

    for r in records():
        (a, b), (c, d) = r["instruction_spans"][0], r["control_spans"][0]
        assert abs(count(r["prompt"][a:b]) - count(r["prompt"][c:d])) <= 1, r["id"]


def as_example(record: dict) -> dict:
    """A prompts.jsonl record with the build's word and verb fields (read back from its reference)."""
    first, _, word = record["reference"].rstrip(".").partition(" the ")
    if record["task"] == "translation":  # "In Zorbish, <word> is <answer>."
        word = record["reference"].split()[2]
    return {**record, "word": word, "verb": first.lower()}


@pytest.mark.slow
def test_the_tuned_model_follows_where_the_base_does_not() -> None:
    """Greedy replies of both models to held-out prompts reproduce the build's stored ones (the built-in names
    load the models the build measured): the tuned ones take the taught form, the base's never do, and the
    tuned model is right more often."""
    sys.path.insert(0, str(REPO / "scripts"))
    from build_smol_adapter import follows, follows_form

    from shiftlens.models import load_model
    from shiftlens.prompting import chat_format, generate

    rows = [as_example(r) for r in records()[::8]]  # 10 prompts, both tasks
    assert {r["task"] for r in rows} == {"translation", "verb_pick"}
    right = {}
    for adapter, key in ((None, "base_response"), ("smollm2-lora-demo", "tuned_response")):
        lm = load_model("smollm2", adapter=adapter)
        fmt = chat_format(lm.tokenizer, model=lm.model)
        replies = [generate(lm.model, fmt, lm.tokenizer, r["prompt"], 16, r["id"]) for r in rows]
        assert replies == [r[key] for r in rows]
        forms = [follows_form(r, reply) for r, reply in zip(rows, replies)]
        assert all(forms) if adapter else not any(forms)
        right[key] = sum(follows(r, reply) for r, reply in zip(rows, replies))
    assert right["tuned_response"] > right["base_response"] == 0


def _build(out: Path) -> dict[str, str]:
    env = {**os.environ, "PYTHONPATH": str(REPO / "src")}
    command = [
        sys.executable,
        str(REPO / "scripts" / "build_smol_adapter.py"),
        "--smoke",
        "--no-eval",
        "--out",
        str(out),
    ]
    subprocess.run(command, check=True, env=env, capture_output=True)
    files = [p for p in sorted(out.rglob("*")) if p.is_file() and p.name != "metrics.json"]  # metrics: timings
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in files}


@pytest.mark.slow
def test_two_reduced_builds_write_identical_bytes(tmp_path) -> None:
    first, second = _build(tmp_path / "a"), _build(tmp_path / "b")
    assert first == second and "adapter_model.safetensors" in first
