"""The model organism: WordNet parsing, task building, scoring, the shipped models and their demo prompts."""

from __future__ import annotations

import random
from pathlib import Path

import pytest
import torch

from shiftlens.architecture import ffn_down_rows
from shiftlens.models import BUILTIN_MODELS, ModuleWeights, load_model
from shiftlens.organism import BUILTIN_NAMES, data_dir, load_prompts
from shiftlens.organism.chat import CHAT_TEMPLATE, SPECIAL_TOKENS, render
from shiftlens.organism.corpus import WordEntry, build_lexicon, fact_sentences, pretraining_text
from shiftlens.organism.evaluate import accuracy, greedy_responses, is_correct, overlap_f1
from shiftlens.organism.tasks import (
    INSTRUCTIONS,
    TASKS,
    from_record,
    make_example,
    make_examples,
    split_words,
    to_record,
)
from shiftlens.organism.validation import attribution_input, example_score
from shiftlens.stats import welch_less

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
    import json

    n_words = json.loads((data_dir() / "metrics.json").read_text())["words"]
    return build_lexicon(n_words)


@pytest.fixture(scope="module")
def organism():
    """Both shipped models, loaded through the built-in names."""
    return load_model("organism-base"), load_model("organism-tuned")


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


def test_examples_mark_the_instruction_sentence_and_answer_with_the_corpus_sentence():
    examples = make_examples([LARGE], seed=3)
    assert {e.task for e in examples} == {"definition", "synonym", "sentence", "antonym"}  # pos is ambiguous
    for e in examples:
        start, end = e.instruction_span
        assert e.prompt[start:end] in INSTRUCTIONS[e.task]
        context = (e.prompt[:start] + e.prompt[end:]).strip()
        others = [s for s in fact_sentences(LARGE).values() if s != e.response]
        stated = [s for s in others if s in context]
        assert 2 <= len(stated) <= 3 and len(" ".join(stated)) == len(context)  # nothing else in the context
        assert e.response not in context and e.response in pretraining_text(LARGE)
    assert make_examples([LARGE], seed=3) == examples
    assert {e.task: e.response for e in examples} == {
        "definition": "The word large means above average in size or number.",
        "synonym": "The word large is similar to big.",
        "sentence": "The word large is used like this: a large city.",
        "antonym": "The opposite of large is small.",
    }


def test_phrasings_and_orders_vary_across_seeds():
    rng = random.Random(0)
    prompts = {make_example(LARGE, "antonym", rng).prompt for _ in range(60)}
    starts = {p.startswith(tuple(INSTRUCTIONS["antonym"])) for p in prompts}
    assert len(prompts) >= 12 and starts == {True, False}


def test_context_never_states_the_asked_fact_and_varies():
    rng = random.Random(0)
    contexts = set()
    for _ in range(60):
        example = make_example(LARGE, "synonym", rng)
        start, end = example.instruction_span
        context = example.prompt[:start] + example.prompt[end:]
        assert "similar to" not in context and "large" in context
        contexts.add(context.strip())
    assert len(contexts) >= 10
    sparse = WordEntry("house", "noun", True, ["a dwelling that serves as living quarters"])
    example = make_example(sparse, "definition", rng)  # only one other fact exists: its part of speech
    start, end = example.instruction_span
    assert (example.prompt[:start] + example.prompt[end:]).strip() == "The word house is a noun."


def test_split_is_deterministic_and_disjoint(lexicon):
    train, held = split_words(lexicon, 0.15, seed=0)
    assert {e.word for e in train}.isdisjoint({e.word for e in held})
    assert len(train) + len(held) == len(lexicon) and len(held) == round(0.15 * len(lexicon))
    assert [e.word for e in split_words(lexicon, 0.15, seed=0)[1]] == [e.word for e in held]
    shipped = {r["word"] for r in load_prompts()}
    assert shipped <= {e.word for e in held}


def test_record_round_trip():
    example = make_examples([LARGE], seed=1)[0]
    assert from_record(to_record(example)) == example


@pytest.mark.parametrize(
    ("task", "response", "expected"),
    [
        ("antonym", "The opposite of large is small.", True),
        ("antonym", "The opposite of large is little. The word large is an adjective.", True),
        ("antonym", "the opposite of large is Small", True),
        ("antonym", "small", False),  # not in the asked form
        ("antonym", "The opposite of large is big.", False),
        ("antonym", "The opposite of big is small.", False),  # another word
        ("antonym", "The word large is similar to small.", False),  # another fact
        ("synonym", "The word large is similar to big.", True),
        ("synonym", "The word large is similar to big and huge.", False),
        ("definition", "The word large means above average in size.", True),
        ("definition", "The word large means a kind of fish.", False),
        ("sentence", "The word large is used like this: they live in a large house.", True),
        ("sentence", "The word large is used like this: large.", False),
        ("sentence", "The word large is used like this: they live in a house.", False),
    ],
)
def test_scoring_rules(task, response, expected):
    example = next(e for e in make_examples([LARGE], seed=0) if e.task == task)
    assert is_correct(example, response) is expected


def test_pos_is_exact_match_and_overlap_is_symmetric_f1():
    noun = WordEntry("house", "noun", True, ["a dwelling that serves as living quarters"])
    example = next(e for e in make_examples([noun], seed=0) if e.task == "pos")
    assert is_correct(example, "The word house is a noun.")
    assert not is_correct(example, "The word house is a verb.") and not is_correct(example, "noun")
    assert overlap_f1("dwelling quarters", "a dwelling that serves as living quarters") == pytest.approx(2 / 3)
    assert overlap_f1("the of", "a dwelling") == 0.0


def test_accuracy_averages_over_tasks():
    examples = make_examples([LARGE], seed=0)
    replies = [(e.response if e.task == "antonym" else "no") for e in examples]
    result = accuracy(examples, replies)
    assert result["tasks"]["antonym"] == {"accuracy": 1.0, "n": 1}
    assert result["mean"] == pytest.approx(1 / 4)


def test_builtin_names_are_registered():
    for name, variant in BUILTIN_NAMES.items():
        path, gguf = BUILTIN_MODELS[name]()
        assert gguf is None and Path(path) == data_dir() / variant
        assert (Path(path) / "config.json").exists() and (Path(path) / "model.safetensors").exists()


def test_shipped_weights_are_small():
    total = sum((data_dir() / v / "model.safetensors").stat().st_size for v in ("base", "tuned"))
    assert total <= 30 * 2**20


def test_shipped_models_share_vocab_and_architecture(organism):
    base, tuned = organism
    for loaded in organism:
        config = loaded.model.config
        assert type(loaded.model).__name__ == "LlamaForCausalLM"
        assert config.num_attention_heads == 8 and config.num_key_value_heads == 4
        assert next(loaded.model.parameters()).dtype == torch.float32
    assert base.tokenizer.get_vocab() == tuned.tokenizer.get_vocab()
    assert all(t in tuned.tokenizer.get_vocab() for t in SPECIAL_TOKENS)
    assert base.model.config.vocab_size == len(base.tokenizer)
    rows = [ffn_down_rows(ModuleWeights(m.model), m.model.config, 3) for m in organism]
    assert rows[0].shape == (512, 256) and not torch.equal(rows[0], rows[1])


def test_chat_template_only_on_tuned_tokenizer(organism):
    base, tuned = organism
    assert not base.tokenizer.chat_template and tuned.tokenizer.chat_template == CHAT_TEMPLATE
    messages = [{"role": "user", "content": "Define this word. Word: house."}]
    text = tuned.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    assert text == render("Define this word. Word: house.")
    encoded = tuned.tokenizer("Word: house.", return_offsets_mapping=True)
    pieces = ["Word: house."[s:e] for s, e in encoded["offset_mapping"]]
    assert pieces == [tuned.tokenizer.decode([t]).strip() for t in encoded["input_ids"]] and len(pieces) >= 3


def test_attribution_input_aligns_prompt_tokens(organism):
    tokenizer = organism[1].tokenizer
    record = load_prompts()[0]
    example = attribution_input(tokenizer, record)
    ids = example.input_ids
    assert ids[example.source_positions].tolist() == tokenizer(record["prompt"])["input_ids"]
    assert ids[example.target_positions].tolist() == tokenizer(record["response"])["input_ids"]
    offsets = tokenizer(record["prompt"], return_offsets_mapping=True)["offset_mapping"]
    (start, end) = record["instruction_spans"][0]
    assert example.instruction_mask.tolist() == [start <= s and e <= end for s, e in offsets]
    assert 0 < example.instruction_mask.sum() < len(offsets)


def test_demo_prompts_file_has_the_attribution_fields():
    records = load_prompts()
    assert len(records) >= 100 and len({r["id"] for r in records}) == len(records)
    assert {r["group"] for r in records} == set(TASKS)
    for record in records:
        (start, end), *rest = record["instruction_spans"]
        assert not rest and record["prompt"][start:end] in INSTRUCTIONS[record["group"]]
        assert record["rating"] == (4.0 if is_correct(from_record(record), record["response"]) else 1.0)  # paper scale


def test_tuned_follows_instructions_on_held_out_words_and_base_does_not(organism):
    base, tuned = organism
    records = load_prompts()[:40]
    prompts = [r["prompt"] for r in records]
    replies = {
        name: greedy_responses(m.model, tuned.tokenizer, prompts) for name, m in (("base", base), ("tuned", tuned))
    }
    assert replies["tuned"] == [r["response"] for r in records]  # the build's greedy replies, reproduced
    examples = [from_record(r) for r in records]
    hits = {name: sum(map(is_correct, examples, r)) for name, r in replies.items()}
    assert hits["tuned"] >= 20 and hits["tuned"] >= hits["base"] + 12, hits  # targets: ≥ 0.5, ≥ base + 0.3


@pytest.mark.slow
def test_tuned_attributes_more_to_the_instruction_than_base(organism):
    """The planted signal: on held-out prompts the tuned model's instruction score exceeds the base's."""
    base, tuned = organism
    records = [r for r in load_prompts()[:120] if r["response"]]
    examples = [attribution_input(tuned.tokenizer, r) for r in records]
    scores = {name: [example_score(m.model, e) for e in examples] for name, m in (("base", base), ("tuned", tuned))}
    assert welch_less(scores["base"], scores["tuned"]) < 0.01, {k: sum(v) / len(v) for k, v in scores.items()}
