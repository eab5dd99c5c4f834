"""Spans: locating, sentence expansion and token masks by character overlap, against literal references."""

from __future__ import annotations

import random

import numpy as np
import pytest
from conftest import tiny_tokenizer

from shiftlens.examples import tsv_spans
from shiftlens.prompting import encode
from shiftlens.spans import (
    SpanError,
    expand_to_sentences,
    locate,
    locate_all,
    paper_sentences,
    sentence_bounds,
    token_mask,
    trim,
)

PROMPT = "Summarize the following text: «café» in 3 words.\nThe sea — 海 — is blue!\nGive a synonym of happy."


def reference_mask(offsets, ranges, length):
    """A token is in a span when one of its characters is (zero-width: its position), char by char."""
    covered = np.zeros(length + 1, dtype=bool)
    for start, end in ranges:
        covered[start:end] = True
    return np.array([covered[a:b].any() if b > a else covered[a] for a, b in offsets])


def test_locate_first_occurrence_and_ranges():
    assert locate("ab ab", "ab", "x") == (0, 2)
    assert locate(PROMPT, "Give a synonym", "x") == (PROMPT.index("Give"), PROMPT.index("Give") + 14)
    assert locate(PROMPT, (0, 9), "x") == (0, 9)
    assert locate_all(PROMPT, ["sea", (1, 2)], "x") == [(PROMPT.index("sea"), PROMPT.index("sea") + 3), (1, 2)]


def test_located_spans_leave_out_surrounding_whitespace():
    text = "Rewrite it.\n\nInput: If you go.\n"
    assert text[slice(*locate(text, "Input: ", "x"))] == "Input:"
    assert text[slice(*locate(text, (10, 13), "x"))] == "."
    assert trim(text, (11, 13)) == (11, 11)
    with pytest.raises(SpanError, match=r"span \[11, 13\] holds only whitespace"):
        locate(text, (11, 13), "x")


def test_a_token_touching_a_span_only_by_whitespace_is_not_in_it():
    """Byte-level BPE: the token " If" starts with the space that ends the fragment "Input: "."""
    text = "Rewrite the sentence.\n\nInput: If you have any questions, ask."
    enc = encode(tiny_tokenizer(), text)
    first_context = next(i for i, (a, _) in enumerate(enc.offsets) if text[a:].lstrip().startswith("If"))
    assert text[slice(*enc.offsets[first_context])].startswith(" ")  # the case this guards against
    mask = token_mask(enc.offsets, locate_all(text, ["Input: "], "x"))
    assert not mask[first_context] and mask[first_context - 1]
    instruction, context = tsv_spans(text, "Rewrite|||Input: &&&If you have", "x")
    assert [text[s:e] for s, e in instruction] == ["Rewrite the sentence.", "Input:"]
    mask = token_mask(enc.offsets, instruction)
    assert not mask[first_context] and mask[first_context - 1]


@pytest.mark.parametrize("span", ["nowhere", "", (5, 5), (-1, 3), (0, len(PROMPT) + 1), (3, 1)])
def test_bad_spans_name_the_example_and_span(span):
    with pytest.raises(SpanError, match="example 'ex-7'") as info:
        locate(PROMPT, span, "ex-7")
    if span:
        assert repr(span if isinstance(span, str) else list(span)) in str(info.value)


def test_sentence_bounds_split_at_punctuation_and_newlines():
    text = 'Hi there. "Quoted!" Next one?\n  Indented line\nno end  '
    sentences = [text[s:e] for s, e in sentence_bounds(text)]
    assert sentences == ["Hi there.", '"Quoted!"', "Next one?", "Indented line", "no end"]
    other = "3.5 is a number. Yes"
    assert [other[s:e] for s, e in sentence_bounds(other)] == ["3.5 is a number.", "Yes"]


def test_paper_rule_also_splits_after_a_colon_and_strips_input_labels():
    text = "Rewrite it. Note: be brief!\n\nInput: If you go: come back.\nInput:Function: col2 * col 3\nwords.Input:"
    assert [text[s:e] for s, e in sentence_bounds(text, "paper")] == [
        "Rewrite it.", "Note:", "be brief!", "Input:", "If you go:", "come back.", "Input:Function:",
        "col2 * col 3", "words.Input:",
    ]  # fmt: skip
    assert [text[s:e] for s, e in sentence_bounds(text)][1] == "Note: be brief!"  # the sound rule keeps ':' inside

    def spans(fragment):
        start = text.index(fragment)
        return [text[s:e] for s, e in paper_sentences(text, (start, start + len(fragment)))]

    assert spans("brief") == ["be brief!"]
    assert spans("Input: If you") == ["If you go:"]  # the "Input:" sentence is all label: dropped
    assert spans("Function") == ["Function:"] and spans("words") == ["words."]
    assert spans("it. Note") == ["Rewrite it.", "Note:"]


def test_paper_tsv_spans_follow_the_paper_rule():
    prompt = "Summarize this: keep it short.\n\nInput: The sea is blue.\n\nOutput:"
    column = "Summarize this|||Input: &&&The sea is blue."
    instruction, context = tsv_spans(prompt, column, "x", "paper")
    assert [prompt[s:e] for s, e in instruction] == ["Summarize this:"]
    assert [prompt[s:e] for s, e in context] == ["The sea is blue."]
    instruction, _ = tsv_spans(prompt, column, "x", "sound")
    assert [prompt[s:e] for s, e in instruction] == ["Summarize this: keep it short.", "Input:"]


def test_expand_fragment_to_its_sentence_and_across_sentences():
    text = "Write a poem about the sea, with rhymes. Keep it short.\nInput: The sea is blue."
    frag = locate(text, "about the sea", "x")
    assert text[slice(*expand_to_sentences(text, frag))] == "Write a poem about the sea, with rhymes."
    both = locate(text, "rhymes. Keep", "x")
    assert text[slice(*expand_to_sentences(text, both))] == "Write a poem about the sea, with rhymes. Keep it short."
    # "Input: <context>" is one sentence; the context fragment blocks the instruction's growth and vice versa.
    label, context = locate(text, "Input: ", "x"), locate(text, "The sea is blue.", "x")
    assert text[slice(*expand_to_sentences(text, label, blocked=[context]))] == "Input:"
    assert text[slice(*expand_to_sentences(text, context, blocked=[label]))] == "The sea is blue."
    assert text[slice(*expand_to_sentences(text, context))] == "Input: The sea is blue."


def test_mask_overlap_rule_on_synthetic_offsets():
    offsets = [(0, 3), (3, 5), (5, 5), (5, 9), (9, 10)]
    assert token_mask(offsets, [(4, 6)]).tolist() == [False, True, True, True, False]
    assert token_mask(offsets, [(3, 5)]).tolist() == [False, True, False, False, False]
    assert token_mask(offsets, [(0, 1), (9, 10)]).tolist() == [True, False, False, False, True]
    assert token_mask(offsets, []).tolist() == [False] * 5


def check_masks_against_reference(tokenizer, prompt, seed=0):
    enc = encode(tokenizer, prompt)
    covered = reference_mask([(i, i + 1) for i in range(len(prompt))], enc.offsets, len(prompt))
    assert all(covered[i] for i, c in enumerate(prompt) if not c.isspace())  # offsets cover the prompt
    rng = random.Random(seed)
    cases = [[(0, 1)], [(len(prompt) - 1, len(prompt))], [(0, len(prompt))], [locate(prompt, "海", "x")]]
    for _ in range(200):
        a = rng.randrange(len(prompt))
        cases.append([(a, rng.randrange(a + 1, len(prompt) + 1))])
    for ranges in cases:
        np.testing.assert_array_equal(
            token_mask(enc.offsets, ranges), reference_mask(enc.offsets, ranges, len(prompt)), err_msg=str(ranges)
        )
    # A multi-byte character split over byte-level tokens marks every piece.
    sea = locate(prompt, "海", "x")
    pieces = [i for i, (a, b) in enumerate(enc.offsets) if a < sea[1] and sea[0] < b]
    assert token_mask(enc.offsets, [sea]).nonzero()[0].tolist() == pieces
    assert pieces


def test_masks_with_a_byte_level_tokenizer():
    check_masks_against_reference(tiny_tokenizer(), PROMPT)


@pytest.mark.slow
def test_masks_with_smollm2_tokenizer(smollm2):
    check_masks_against_reference(smollm2.tokenizer, PROMPT, seed=1)
    enc = encode(smollm2.tokenizer, PROMPT)
    # The first and last tokens are in spans at the very start and end; the newline token is its own.
    assert token_mask(enc.offsets, [(0, 1)])[0] and token_mask(enc.offsets, [(len(PROMPT) - 1, len(PROMPT))])[-1]
    newline = PROMPT.index("\n")
    assert any(PROMPT[a:b] == "\n" for a, b in enc.offsets if a <= newline < b)
