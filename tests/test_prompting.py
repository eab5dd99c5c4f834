"""Model input: template split (rows exactly the prompt tokens), policies, length checks, greedy generation."""

from __future__ import annotations

import dataclasses

import pytest
import torch
from conftest import TOKENIZER_TEXT, tiny_model, tiny_tokenizer

from shiftlens.organism.chat import END, USER
from shiftlens.organism.tokenizer import train_tokenizer
from shiftlens.prompting import PromptError, build_sequence, chat_format, encode, generate

PROMPT = "Summarize the following text.\nThe sea — 海 — is blue!"
RESPONSE = "The sea is blue."
TEMPLATE = "{{ bos_token }}User: {{ messages[0]['content'] }}\n{% if add_generation_prompt %}Assistant:{% endif %}"


@pytest.fixture(scope="module")
def chat_tokenizer():
    """The organism's byte-level tokenizer with its chat template (end-of-turn token <|end|> ≠ EOS)."""
    return train_tokenizer(TOKENIZER_TEXT, 300, chat=True)


def model_for(tokenizer, seed=0, **overrides):
    ids = {"bos_token_id": tokenizer.bos_token_id, "eos_token_id": tokenizer.eos_token_id}
    return tiny_model("llama", seed=seed, vocab_size=len(tokenizer), **ids, **overrides)


def check_rows_and_columns(tokenizer, fmt, model):
    seq = build_sequence(model, fmt, tokenizer, PROMPT, RESPONSE, "x")
    ids = seq.input_ids.tolist()
    assert seq.prompt.ids == list(tokenizer(PROMPT, add_special_tokens=False)["input_ids"])
    assert [ids[p] for p in seq.prompt_positions] == seq.prompt.ids
    assert [ids[p] for p in seq.response_positions] == seq.response.ids
    assert ids == [*fmt.prefix_ids, *seq.prompt.ids, *fmt.suffix_ids, *seq.response.ids]
    assert seq.prompt.tokens == [PROMPT[a:b] for a, b in seq.prompt.offsets]
    assert tokenizer.decode(seq.prompt.ids) == PROMPT and tokenizer.decode(seq.response.ids) == RESPONSE
    assert seq.response.tokens == [RESPONSE[a:b] for a, b in seq.response.offsets]
    return seq


def test_tokenizer_template_is_split_around_the_prompt(chat_tokenizer):
    model = model_for(chat_tokenizer)
    fmt = chat_format(chat_tokenizer, "auto", model)
    seq = check_rows_and_columns(chat_tokenizer, fmt, model)
    assert chat_tokenizer.convert_ids_to_tokens(list(fmt.prefix_ids)) == [USER]
    assert chat_tokenizer.decode(list(fmt.suffix_ids)) == "<|end|><|assistant|>"
    # The rendered template's text is exactly prefix + prompt + suffix.
    rendered = chat_tokenizer.apply_chat_template(
        [{"role": "user", "content": PROMPT}], tokenize=False, add_generation_prompt=True
    )
    head = seq.input_ids[: seq.response_positions[0]].tolist()
    assert chat_tokenizer.decode(head) == rendered
    # Generation stops at EOS and at the template's end-of-turn token.
    assert set(fmt.stop_ids) == {chat_tokenizer.eos_token_id, chat_tokenizer.convert_tokens_to_ids(END)}


def test_none_policy_adds_only_the_tokenizers_leading_specials(chat_tokenizer):
    from tokenizers import processors

    tokenizer = tiny_tokenizer()
    assert chat_format(tokenizer, "none").prefix_ids == ()
    tokenizer.backend_tokenizer.post_processor = processors.TemplateProcessing(
        single="<s> $A", special_tokens=[("<s>", tokenizer.bos_token_id)]
    )
    fmt = chat_format(tokenizer, "none")
    assert fmt.prefix_ids == (tokenizer.bos_token_id,) and fmt.suffix_ids == ()
    check_rows_and_columns(tokenizer, fmt, model_for(tokenizer))
    # The chat tokenizer under "none" ignores its template.
    assert chat_format(chat_tokenizer, "none").template is None and chat_format(chat_tokenizer, "none").prefix_ids == ()


def test_template_file_and_identical_rows_across_models_and_policies(tmp_path, chat_tokenizer):
    path = tmp_path / "t.jinja"
    path.write_text(TEMPLATE)
    tokenizer = tiny_tokenizer()
    fmt = chat_format(tokenizer, str(path))
    assert tokenizer.decode(list(fmt.prefix_ids)) == "<s>User: " and tokenizer.decode(list(fmt.suffix_ids)) == (
        "\nAssistant:"
    )
    assert fmt.prefix_ids[0] == tokenizer.bos_token_id  # BOS written by the template is a real special token
    rows = []
    for seed, policy in [(0, str(path)), (1, "none"), (2, "auto")]:
        seq = check_rows_and_columns(tokenizer, chat_format(tokenizer, policy), model_for(tokenizer, seed))
        rows.append(seq.prompt)
    assert rows[0] == rows[1] == rows[2]


@pytest.mark.parametrize(
    ("template", "message"),
    [
        ("{{ messages[0]['content'] | upper }}", "exactly once and unchanged; it appeared 0"),
        ("{{ messages[0]['content'] }}{{ messages[0]['content'] }}", "appeared 2 times"),
        ("{% if %}", "failed to render"),
    ],
)
def test_bad_template_files(tmp_path, template, message):
    path = tmp_path / "bad.jinja"
    path.write_text(template)
    with pytest.raises(PromptError, match=message):
        chat_format(tiny_tokenizer(), str(path))
    with pytest.raises(PromptError, match="cannot read chat template file"):
        chat_format(tiny_tokenizer(), str(tmp_path / "missing.jinja"))


def test_slow_tokenizer_is_refused():
    class Slow:
        is_fast = False

    with pytest.raises(PromptError, match="fast"):
        chat_format(Slow(), "none")


def test_empty_and_too_long_examples_are_named(chat_tokenizer):
    fmt = chat_format(chat_tokenizer, "auto")
    model = model_for(chat_tokenizer, max_position_embeddings=80)
    with pytest.raises(PromptError, match="example 'e1': empty prompt"):
        build_sequence(model, fmt, chat_tokenizer, " \n", RESPONSE, "e1")
    with pytest.raises(PromptError, match="example 'e2': empty response"):
        build_sequence(model, fmt, chat_tokenizer, PROMPT, "  ", "e2")
    n = len(fmt.prefix_ids) + len(encode(chat_tokenizer, PROMPT).ids) + len(fmt.suffix_ids)
    fits = "x" * (80 - n)
    assert len(encode(chat_tokenizer, fits).ids) == 80 - n
    assert build_sequence(model, fmt, chat_tokenizer, PROMPT, fits, "ok").input_ids.numel() == 80
    with pytest.raises(PromptError, match="example 'e3': prompt \\+ response is 81 tokens, longer than .* 80"):
        build_sequence(model, fmt, chat_tokenizer, PROMPT, fits + "x", "e3")
    with pytest.raises(PromptError, match="example 'e4': the prompt with its template"):
        generate(model, fmt, chat_tokenizer, PROMPT + "x" * 80, 5, "e4")


def greedy_reference(model, ids, steps):
    """Greedy decoding written out: append the argmax of the last logits, one full forward per step."""
    ids = list(ids)
    out = []
    for _ in range(steps):
        with torch.no_grad():
            logits = model(torch.tensor([ids])).logits[0, -1]
        out.append(int(logits.argmax()))
        ids.append(out[-1])
    return out


def test_generation_is_greedy_and_stops(chat_tokenizer):
    model = model_for(chat_tokenizer, seed=3)
    fmt = dataclasses.replace(chat_format(chat_tokenizer, "auto", model), stop_ids=())
    head = [*fmt.prefix_ids, *encode(chat_tokenizer, PROMPT).ids, *fmt.suffix_ids]
    expected = greedy_reference(model, head, 6)
    assert generate(model, fmt, chat_tokenizer, PROMPT, 6, "g") == chat_tokenizer.decode(expected)
    # Stopping at a token drops it and everything after; stopping at the first token leaves nothing.
    stop_at_third = dataclasses.replace(fmt, stop_ids=(expected[2],))
    first_stop = expected.index(expected[2])
    assert generate(model, stop_at_third, chat_tokenizer, PROMPT, 6, "g") == chat_tokenizer.decode(
        expected[:first_stop]
    )
    with pytest.raises(PromptError, match="example 'g': the model generated an empty response"):
        generate(model, dataclasses.replace(fmt, stop_ids=(expected[0],)), chat_tokenizer, PROMPT, 6, "g")
    # The context length caps the number of new tokens.
    short = model_for(chat_tokenizer, seed=3, max_position_embeddings=len(head) + 2)
    capped = dataclasses.replace(chat_format(chat_tokenizer, "auto", short), stop_ids=())
    assert generate(short, capped, chat_tokenizer, PROMPT, 6, "g") == chat_tokenizer.decode(expected[:2])
