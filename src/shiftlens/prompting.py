"""Model input of one example: chat-template wrapping, the token sequence and greedy generation.

The sequence is ``[template prefix][prompt][template suffix][response]``:

* The chat-template policy is ``auto`` (the tokenizer's template when it has one, else ``none``),
  ``none`` (no template: the tokenizer's leading special tokens such as BOS, then the prompt) or a path
  to a Jinja template file. A template is rendered once with a placeholder as the user message and
  split around it; the template's own text (system prompt, role markers, BOS if the template writes
  it) becomes the prefix and suffix, tokenized on their own.
* The prompt and the response are each tokenized **on their own** (no special tokens added), so the
  matrix rows are exactly the prompt's tokens with character offsets into the prompt string, and the
  columns exactly the response's tokens with offsets into the response. BOS and template tokens are in
  the model input but are never rows or columns. Tokenizing the pieces apart fixes token boundaries at
  the prompt's edges (a merge across an edge, e.g. "\\n" + "Hi", does not happen); the prompt's tokens
  therefore depend only on the tokenizer, and two models sharing a tokenizer get identical rows.
  Templates that transform the message (e.g. ``| trim``) see the prompt verbatim here.
* No EOS follows the response: being last, it could not change any response token's attribution.
* Generation is greedy, stops at EOS or the template's end-of-turn token, and the response text is the
  decode of the generated tokens (special tokens skipped); it is then tokenized like a given response.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from shiftlens.errors import ShiftlensError

PLACEHOLDER = "\ue000shiftlens-message\ue001"  # private-use characters: never in real text
POLICIES = ("auto", "none")


class PromptError(ShiftlensError, ValueError):
    """An example that cannot be turned into model input (empty, too long, bad template)."""


@dataclass(frozen=True)
class ChatFormat:
    """The token ids around every prompt, and the ids that end a generated reply."""

    policy: str
    template: str | None
    prefix_ids: tuple[int, ...]
    suffix_ids: tuple[int, ...]
    stop_ids: tuple[int, ...]


@dataclass(frozen=True)
class Encoded:
    """A text's token ids with each token's text and ``[start, end)`` character offsets into it."""

    ids: list[int]
    tokens: list[str]
    offsets: list[tuple[int, int]]


@dataclass(frozen=True)
class Sequence:
    """The full model input of one example and which positions are prompt rows and response columns."""

    input_ids: torch.Tensor
    prompt: Encoded
    response: Encoded
    prompt_positions: torch.Tensor
    response_positions: torch.Tensor


def _render(tokenizer: Any, template: str, messages: list[dict[str, str]], generation_prompt: bool) -> str:
    return tokenizer.apply_chat_template(
        messages, chat_template=template, tokenize=False, add_generation_prompt=generation_prompt
    )


def _ids(tokenizer: Any, text: str) -> list[int]:
    return list(tokenizer(text, add_special_tokens=False)["input_ids"]) if text else []


def _leading_special_ids(tokenizer: Any) -> list[int]:
    """The special tokens the tokenizer puts before any text by default (typically BOS)."""
    plain = _ids(tokenizer, "a")
    full = list(tokenizer("a")["input_ids"])
    for k in range(len(full) - len(plain) + 1):
        if full[k : k + len(plain)] == plain:
            return full[:k]
    return []


def _template_text(tokenizer: Any, policy: str) -> str | None:
    if policy == "none":
        return None
    if policy == "auto":
        template = getattr(tokenizer, "chat_template", None)
        return template if isinstance(template, str) and template.strip() else None
    path = Path(policy)
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise PromptError(f"cannot read chat template file {path}: {exc}") from exc


def _end_of_turn(tokenizer: Any, template: str) -> list[int]:
    """The special token the template writes right after an assistant message, if any."""
    try:
        text = _render(
            tokenizer,
            template,
            [{"role": "user", "content": "x"}, {"role": "assistant", "content": PLACEHOLDER}],
            False,
        )
    except Exception:  # noqa: BLE001 - a template may refuse this conversation; then there is no end token
        return []
    after = text.split(PLACEHOLDER, 1)[1] if PLACEHOLDER in text else ""
    ids = _ids(tokenizer, after)
    return ids[:1] if ids and ids[0] in set(tokenizer.all_special_ids) | set(tokenizer.added_tokens_decoder) else []


def _as_list(value: Any) -> list[int]:
    if value is None:
        return []
    return [int(v) for v in value] if isinstance(value, (list, tuple)) else [int(value)]


def chat_format(tokenizer: Any, policy: str = "auto", model: Any = None) -> ChatFormat:
    """The wrapping of prompts under a chat-template policy (``auto``, ``none`` or a Jinja file path)."""
    if not getattr(tokenizer, "is_fast", False):
        raise PromptError("attribution needs a fast (Rust) tokenizer for character offsets; this one is not")
    template = _template_text(tokenizer, policy)
    stops = _as_list(tokenizer.eos_token_id)
    if model is not None and getattr(model, "generation_config", None) is not None:
        stops += _as_list(model.generation_config.eos_token_id)
    if template is None:
        return ChatFormat(policy, None, tuple(_leading_special_ids(tokenizer)), (), tuple(dict.fromkeys(stops)))
    try:
        rendered = _render(tokenizer, template, [{"role": "user", "content": PLACEHOLDER}], True)
    except Exception as exc:  # noqa: BLE001 - Jinja errors of a user's template file
        raise PromptError(f"chat template ({policy}) failed to render: {exc}") from exc
    if rendered.count(PLACEHOLDER) != 1:
        raise PromptError(
            f"chat template ({policy}) must insert the user message exactly once and unchanged; "
            f"it appeared {rendered.count(PLACEHOLDER)} times"
        )
    prefix, suffix = rendered.split(PLACEHOLDER)
    stops += _end_of_turn(tokenizer, template)
    return ChatFormat(
        policy, template, tuple(_ids(tokenizer, prefix)), tuple(_ids(tokenizer, suffix)), tuple(dict.fromkeys(stops))
    )


def encode(tokenizer: Any, text: str) -> Encoded:
    """Tokenize ``text`` on its own (no special tokens) with offsets; token text is its offset slice."""
    enc = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
    offsets = [(int(a), int(b)) for a, b in enc["offset_mapping"]]
    return Encoded(list(enc["input_ids"]), [text[a:b] for a, b in offsets], offsets)


def context_length(model: Any) -> int | None:
    """The model's maximum sequence length (``max_position_embeddings``), None if it declares none."""
    value = getattr(model.config, "max_position_embeddings", None)
    return int(value) if value else None


def _check_length(model: Any, length: int, example_id: str, what: str) -> None:
    limit = context_length(model)
    if limit is not None and length > limit:
        raise PromptError(
            f"example {example_id!r}: {what} is {length} tokens, longer than the model's context of {limit}"
        )


def prompt_input(fmt: ChatFormat, tokenizer: Any, prompt: str, example_id: str) -> tuple[list[int], Encoded]:
    """The ids up to where the response starts, and the prompt's own tokens."""
    if not prompt.strip():
        raise PromptError(f"example {example_id!r}: empty prompt")
    encoded = encode(tokenizer, prompt)
    return [*fmt.prefix_ids, *encoded.ids, *fmt.suffix_ids], encoded


def build_sequence(
    model: Any, fmt: ChatFormat, tokenizer: Any, prompt: str, response: str, example_id: str
) -> Sequence:
    """The model input of a prompt and its response, with the row and column positions."""
    head, prompt_enc = prompt_input(fmt, tokenizer, prompt, example_id)
    if not response.strip():
        raise PromptError(f"example {example_id!r}: empty response")
    response_enc = encode(tokenizer, response)
    ids = head + response_enc.ids
    _check_length(model, len(ids), example_id, "prompt + response")
    start = len(fmt.prefix_ids)
    return Sequence(
        input_ids=torch.tensor(ids, dtype=torch.long),
        prompt=prompt_enc,
        response=response_enc,
        prompt_positions=torch.arange(start, start + len(prompt_enc.ids)),
        response_positions=torch.arange(len(head), len(ids)),
    )


def generate(model: Any, fmt: ChatFormat, tokenizer: Any, prompt: str, max_new_tokens: int, example_id: str) -> str:
    """The greedy reply to ``prompt`` (at most ``max_new_tokens``, fewer if the context is shorter)."""
    head, _ = prompt_input(fmt, tokenizer, prompt, example_id)
    _check_length(model, len(head) + 1, example_id, "the prompt with its template")
    limit = context_length(model)
    budget = max_new_tokens if limit is None else min(max_new_tokens, limit - len(head))
    device = model.get_input_embeddings().weight.device
    input_ids = torch.tensor([head], dtype=torch.long, device=device)
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else (fmt.stop_ids or [0])[0]
    with torch.no_grad():
        out = model.generate(
            input_ids,
            attention_mask=torch.ones_like(input_ids),
            max_new_tokens=budget,
            do_sample=False,
            eos_token_id=list(fmt.stop_ids) or None,
            pad_token_id=pad,
        )
    generated = out[0, len(head) :].tolist()
    while generated and generated[-1] in fmt.stop_ids:
        generated.pop()
    text = tokenizer.decode(generated, skip_special_tokens=True)
    if not text.strip():
        raise PromptError(f"example {example_id!r}: the model generated an empty response")
    return text
