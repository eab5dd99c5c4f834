"""The organism v2: planted-task prompts, their records and the recovery scores of the validation."""

from __future__ import annotations

import random
from collections import Counter

import pytest

from shiftlens.organism.corpus import WordEntry
from shiftlens.organism.planted import (
    CATEGORIES,
    FOLLOWED,
    UNFOLLOWED,
    accuracy,
    balanced,
    category_words,
    control_span,
    invented_lexicon,
    make_prompts,
    records,
)

WORDS = [
    WordEntry(word=w, pos="noun", unique_pos=True, definitions=[f"a thing called {w}"], synonyms=["thing"])
    for w in ("table", "river", "window", "garden", "stone", "cloud")
]


def word_offsets(text: str) -> list[tuple[int, int]]:
    """Offsets of whitespace-separated tokens (a stand-in tokenizer)."""
    return [(m.start(), m.end()) for m in __import__("re").finditer(r"\S+", text)]


@pytest.fixture(scope="module")
def prompts():
    return make_prompts(40, WORDS, invented_lexicon([w.word for w in WORDS]), seed=3, repeats=2)


def test_positions_are_balanced_per_task(prompts):
    counts = Counter((p.task, p.position) for p in prompts)
    assert counts == {
        ("choose", "first"): 20,
        ("choose", "last"): 20,
        ("translate", "first"): 6,
        ("translate", "last"): 6,
    }
    assert balanced(7, random.Random(0)).count(True) == 3


def test_instruction_span_and_position_agree(prompts):
    for p in prompts:
        a, b = p.instruction_span
        assert (a == 0) == (p.position == "first")
        assert (b == len(p.prompt)) == (p.position == "last")


def test_choose_prompt_names_one_word_of_the_verbs_category(prompts):
    for p in (p for p in prompts if p.task == "choose"):
        named = [w.strip(",.") for w in p.prompt.split("Here are ")[1].split(".")[0].replace(" and", ",").split(",")]
        named = [w.strip() for w in named if w.strip()]
        assert [w for w in named if w in CATEGORIES[p.query]] == [p.word]
        assert p.reference == f"I {p.query} {p.word}." and p.query in p.prompt.lower()


def test_only_the_instruction_tells_the_tasks_apart(prompts):
    """Every context is a choose-style word list, so a model must read the instruction to know the task; a
    translate instruction names its English word, and the answer is that word's invented translation."""
    zorbish = invented_lexicon([w.word for w in WORDS])
    for p in prompts:
        a, b = p.instruction_span
        context = (p.prompt[:a] + p.prompt[b:]).strip()
        words = context.removeprefix("Here are ").removesuffix(".").replace(" and", ",").split(", ")
        assert context.startswith("Here are ") and len(words) == 4
        assert all(w in category_words() for w in words) and p.unfollowed == context
        if p.task == "translate":
            assert f" {p.word} " in f" {p.prompt[a:b]} ".replace("?", " ").replace(".", " ")
            assert p.reference == f"In Zorbish it is {zorbish[p.word]}." and p.answer == zorbish[p.word]


def test_invented_words_are_distinct_non_ascii_and_never_prefixes():
    lexicon = invented_lexicon([str(i) for i in range(300)])
    words = list(lexicon.values())
    assert len(set(words)) == 300 and all(any(not c.isascii() for c in w) for w in words)
    assert not any(a != b and b.startswith(a) for a in words for b in words)
    assert invented_lexicon(["x", "y"]) == invented_lexicon(["x", "y"])


def test_control_span_has_as_many_tokens_as_the_instruction_and_avoids_it(prompts):
    for p in prompts:
        offsets = word_offsets(p.prompt)
        a, b = control_span(p, offsets, random.Random(0))
        inside = [o for o in offsets if o[0] < p.instruction_span[1] and o[1] > p.instruction_span[0]]
        control = [o for o in offsets if o[0] < b and o[1] > a]
        assert len(control) == len(inside) and not set(control) & set(inside)


def test_records_pair_followed_and_unfollowed(prompts):
    recs = records(prompts, word_offsets, seed=0)
    assert len(recs) == 2 * len(prompts)
    for followed, unfollowed in zip(recs[::2], recs[1::2]):
        assert followed["rating"] == FOLLOWED and unfollowed["rating"] == UNFOLLOWED
        assert followed["prompt"] == unfollowed["prompt"] and followed["response"] == followed["reference"]
        assert unfollowed["response"] in unfollowed["prompt"]  # it repeats the context, ignoring the instruction
        for key in ("id", "task", "prompt", "instruction_spans", "control_spans", "position", "response", "rating"):
            assert key in followed
    replies = [r["reference"] if r["task"] == "choose" else "no" for r in recs]
    assert accuracy(recs, replies)["tasks"] == {
        "choose": {"accuracy": 1.0, "n": 80},
        "translate": {"accuracy": 0.0, "n": 24},
    }


def test_category_pairs_pass_the_default_pair_filter():
    """Every planted (verb, word) relation is one the heads method's default filter (PPMI over WordNet glosses)
    can keep, with the shipped word list plus the planted words as vocabulary (the v2 build's own word list
    admits all 54 too: docs/organism.md)."""
    import torch

    from shiftlens.heads.cooccurrence import word_vectors
    from shiftlens.heads.core import word_thresholds
    from shiftlens.organism import vocab_path
    from shiftlens.vocabulary import read_word_list

    words = [w for w, _ in read_word_list(vocab_path())]
    words += [w for w in [*CATEGORIES, *category_words()] if w not in words]
    index = {w: i for i, w in enumerate(words)}
    vectors = word_vectors("ppmi:wordnet", words)
    theta = word_thresholds(vectors.vectors, vectors.present, torch.arange(min(3000, len(words))), 1.96)
    for verb, keys in CATEGORIES.items():
        for key in keys:
            sim = float(vectors.vectors[index[verb]].double() @ vectors.vectors[index[key]].double())
            assert sim > theta[index[verb]] and sim > theta[index[key]], (verb, key)


def test_category_words_are_distinct():
    words = category_words()
    assert len(words) == len(set(words)) and not set(words) & set(CATEGORIES)


def test_pretraining_loss_leaves_unseen_tokens_out_of_the_softmax():
    """The builder's LM loss is cross-entropy over the kept vocabulary only: an unseen token's embedding row
    (tied input/output) gets exactly zero gradient, and the loss equals the reference over the kept columns."""
    import sys
    from pathlib import Path

    import torch
    from transformers import GPT2Config, GPT2LMHeadModel

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))
    from build_organism import lm_loss

    torch.manual_seed(0)
    config = GPT2Config(vocab_size=20, n_embd=16, n_layer=1, n_head=2, n_positions=16)
    model = GPT2LMHeadModel(config).eval()  # no dropout: both forwards must agree
    unseen = torch.zeros(20, dtype=torch.bool)
    unseen[[3, 7]] = True
    batch = torch.tensor([[0, 1, 2, 4, 5, 6, 8, 9], [9, 8, 5, 5, 1, 0, 2, 4]])
    loss = lm_loss(model, batch, unseen)
    loss.backward()
    grad = model.transformer.wte.weight.grad
    assert torch.count_nonzero(grad[3]) == 0 and torch.count_nonzero(grad[7]) == 0
    assert torch.count_nonzero(grad[1]) > 0
    logits = model(input_ids=batch).logits[:, :-1][..., ~unseen]
    kept = torch.cumsum(~unseen, 0) - 1  # old id -> column among the kept tokens
    reference = torch.nn.functional.cross_entropy(logits.reshape(-1, 18), kept[batch[:, 1:]].reshape(-1))
    assert torch.allclose(loss, reference, atol=1e-6)


def test_held_out_prompts_interleave_tasks_and_positions(prompts):
    """Any first N held-out prompts are balanced: the groups (task, position) take turns."""
    from shiftlens.organism.planted import interleaved

    ordered = interleaved(prompts)
    assert sorted(p.id for p in ordered) == sorted(p.id for p in prompts)
    first = Counter((p.task, p.position) for p in ordered[:8])
    assert set(first) == {("choose", "first"), ("choose", "last"), ("translate", "first"), ("translate", "last")}
    assert max(first.values()) - min(first.values()) == 0
