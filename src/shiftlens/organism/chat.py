"""The organism's special tokens and chat format, shared by the tokenizer builder, evaluation and demo.

Both models share one vocabulary (these special tokens included); only the tuned tokenizer carries the
chat template. The base is prompted with exactly the same rendered string, so prompt tokens are identical.
"""

from __future__ import annotations

END_OF_TEXT = "<|endoftext|>"
USER = "<|user|>"
ASSISTANT = "<|assistant|>"
END = "<|end|>"
SPECIAL_TOKENS = (END_OF_TEXT, USER, ASSISTANT, END)
CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{% if message['role'] == 'user' %}<|user|>{% else %}<|assistant|>{% endif %}"
    "{{ message['content'] }}<|end|>"
    "{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>{% endif %}"
)


def render(prompt: str, response: str | None = None) -> str:
    """The chat string the template produces for one user turn (and the assistant's reply if given)."""
    text = f"{USER}{prompt}{END}{ASSISTANT}"
    return text if response is None else f"{text}{response}{END}"
