"""The shipped model organism (v2): its WordNet corpus, built-in names, models, prompt records and accuracy.

Figures of the build are read from its metrics.json, never written here (a rebuild replaces them).
"""

from __future__ import annotations

import json
import re
from collections import Counter
from pathlib import Path

import pytest
import torch

from shiftlens.architecture import ffn_down_rows
from shiftlens.models import BUILTIN_MODELS, ModuleWeights, load_model
from shiftlens.organism import BUILTIN_NAMES, data_dir, load_prompts
from shiftlens.organism.chat import CHAT_TEMPLATE, SPECIAL_TOKENS, render
from shiftlens.organism.corpus import WordEntry, build_lexicon, pretraining_text
from shiftlens.organism.evaluate import greedy_responses
from shiftlens.organism.planted import (
    CATEGORIES,
    CHOOSE_INSTRUCTIONS,
    FOLLOWED,
    TASKS,
    TRANSLATE_INSTRUCTIONS,
    UNFOLLOWED,
    accuracy,
)

METRICS = json.loads((data_dir() / "metrics.json").read_text(encoding="utf-8"))

LARGE = WordEntry(
    word="large",
    pos="adjective",
    unique_pos=False,
    definitions=["above average in size or number", "fairly large or important in effect"],
    synonyms=["big"],
    antonyms=["small", "little"],
    example="a large city",
)


@pytest.fixture(scope="module")
def lexicon() -> list[WordEntry]:
    """The shipped organism's words (same count as the build)."""
    n_words = json.loads((data_dir() / "metrics.json").read_text())["words"]
    return build_lexicon(n_words)


@pytest.fixture(scope="module")
def organism():
    """Every shipped model by its variant, loaded through the built-in names."""
    return {variant: load_model(name) for name, variant in BUILTIN_NAMES.items()}


def test_lexicon_entries_follow_wordnet(lexicon):
    by_word = {e.word: e for e in lexicon}
    large = by_word["large"]
    assert large.pos == "adjective"
    assert "big" in large.synonyms and "small" in large.antonyms
    assert large.definitions[0].startswith("above average in size")
    assert by_word["house"].pos == "noun"
    assert len(by_word) == len(lexicon)


def test_pretraining_text_states_every_fact():
    assert pretraining_text(LARGE) == (
        "The word large is an adjective. The word large means above average in size or number. "
        "The word large can also mean fairly large or important in effect. The word large is similar to big. "
        "The opposite of large is small. The word large is used like this: a large city."
    )


def test_builtin_names_are_registered():
    for name, variant in BUILTIN_NAMES.items():
        path, gguf = BUILTIN_MODELS[name]()
        assert gguf is None and Path(path) == data_dir() / variant
        assert (Path(path) / "config.json").exists() and (Path(path) / "model.safetensors").exists()


def test_shipped_weights_are_small():
    total = sum((data_dir() / v / "model.safetensors").stat().st_size for v in BUILTIN_NAMES.values())
    assert total <= 30 * 2**20


def test_shipped_models_share_vocab_and_architecture(organism):
    """Every shipped model has the build's architecture (metrics.json's settings), float32 once loaded, the same
    tokenizer, tied embeddings; tuning changed the FFN weights."""
    shape = METRICS["settings"]["model"]
    architecture = json.loads((data_dir() / "base" / "config.json").read_text())["architectures"]
    for loaded in organism.values():
        model, config = loaded.model, loaded.model.config
        assert [type(model).__name__] == architecture
        assert (config.n_layer, config.n_head, config.n_embd) == (shape["n_layer"], shape["n_head"], shape["n_embd"])
        assert next(model.parameters()).dtype == torch.float32
        tied = model.get_input_embeddings().weight.data_ptr() == model.get_output_embeddings().weight.data_ptr()
        assert tied is METRICS["settings"]["tie_word_embeddings"]
        assert loaded.tokenizer.get_vocab() == organism["base"].tokenizer.get_vocab()
        assert config.vocab_size == len(loaded.tokenizer) == METRICS["settings"]["vocab_size"]
    assert all(t in organism["tuned"].tokenizer.get_vocab() for t in SPECIAL_TOKENS)
    rows = {k: ffn_down_rows(ModuleWeights(m.model), m.model.config, shape["n_layer"] - 1) for k, m in organism.items()}
    assert rows["base"].shape == (shape["n_inner"], shape["n_embd"])
    assert not any(torch.equal(rows["base"], rows[k]) for k in rows if k != "base")


def test_invented_words_start_at_zero_and_only_tuning_gives_them_rows(organism):
    """The builder starts the invented words' rows at zero and the pre-training softmax leaves them out, so the
    base and continued models hold exact zeros there; tuning grows them along a shared direction (what the FFN
    method reads as the lexicon; measured 0.09 mean cosine on every seed)."""
    lexicon = json.loads((data_dir() / "ground_truth.json").read_text())["lexicon"]
    ids = [organism["base"].tokenizer(" " + z)["input_ids"][0] for z in lexicon.values()]
    for variant, loaded in organism.items():
        rows = loaded.model.get_input_embeddings().weight[ids]
        if variant in ("base", "continued"):
            assert torch.count_nonzero(rows) == 0, variant
        else:
            unit = torch.nn.functional.normalize(rows, dim=1)
            shared = (unit.sum(0).norm() ** 2 - len(ids)) / (len(ids) * (len(ids) - 1))  # mean pairwise cosine
            assert rows.norm(dim=1).min() > 0 and shared > 0.05, variant  # random rows: 0 ± 0.002


def test_chat_template_only_on_tuned_tokenizers(organism):
    for variant, loaded in organism.items():
        assert (loaded.tokenizer.chat_template == CHAT_TEMPLATE) is variant.startswith("tuned"), variant
        assert variant.startswith("tuned") or not loaded.tokenizer.chat_template
    tokenizer = organism["tuned"].tokenizer
    messages = [{"role": "user", "content": "Eat one of these."}]
    text = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    assert text == render("Eat one of these.")
    encoded = tokenizer("Here are soup and truck.", return_offsets_mapping=True)
    pieces = ["Here are soup and truck."[s:e] for s, e in encoded["offset_mapping"]]
    assert pieces == [tokenizer.decode([t]).strip() for t in encoded["input_ids"]] and len(pieces) >= 5


def instruction_pattern(task: str) -> re.Pattern:
    """The task's instruction phrasings as one pattern (a choose phrasing with any of the verbs, a translate
    phrasing with any lower-case word)."""
    verbs = "|".join(CATEGORIES)
    phrasings = CHOOSE_INSTRUCTIONS if task == "choose" else TRANSLATE_INSTRUCTIONS
    alternatives = [
        re.escape(p).replace(r"\{V\}", f"(?i:{verbs})").replace(r"\{v\}", f"(?:{verbs})").replace(r"\{w\}", "[a-z]+")
        for p in phrasings
    ]
    return re.compile("|".join(alternatives))


def test_prompts_file_pairs_followed_and_unfollowed_records():
    records = load_prompts()
    assert len({r["id"] for r in records}) == len(records)
    assert {r["task"] for r in records} == set(TASKS)
    for followed, unfollowed in zip(records[::2], records[1::2]):
        assert followed["id"].endswith("-followed") and unfollowed["id"] == followed["id"][:-9] + "-unfollowed"
        assert (followed["rating"], unfollowed["rating"]) == (FOLLOWED, UNFOLLOWED)
        assert followed["prompt"] == unfollowed["prompt"] and followed["response"] == followed["reference"]
        assert unfollowed["response"] in unfollowed["prompt"]
        (start, end), *rest = followed["instruction_spans"]
        (c_start, c_end), *more = followed["control_spans"]
        assert not rest and not more and (c_end <= start or c_start >= end)
        assert instruction_pattern(followed["task"]).fullmatch(followed["prompt"][start:end])
        assert (start == 0) == (followed["position"] == "first")
    for task in TASKS:  # instruction first or last in equal shares, per task
        positions = Counter(r["position"] for r in records if r["task"] == task)
        assert positions["first"] == positions["last"] > 0


def test_greedy_replies_reproduce_the_builds_accuracy():
    """The build's follow accuracy (metrics.json) is reproduced by greedy decoding of the shipped models, and
    the tuned model follows where the base does not."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    followed = [r for r in load_prompts() if r["rating"] > 0]
    tokenizer = AutoTokenizer.from_pretrained(data_dir() / "tuned")
    found = {}
    for variant in ("base", "tuned"):
        model = AutoModelForCausalLM.from_pretrained(data_dir() / variant, dtype=torch.float32).eval()
        replies = greedy_responses(model, tokenizer, [r["prompt"] for r in followed], max_new_tokens=12)
        found[variant] = accuracy(followed, replies)
        assert found[variant] == METRICS["accuracy"][variant], variant
    assert found["tuned"]["mean"] > found["base"]["mean"]
