"""Whether a base and a tuned model tokenize alike, so their attributions line up token by token."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from shiftlens.errors import ShiftlensError

CONSEQUENCES = (
    "with different tokenizers the attribution matrices of one example have different rows and columns, so the "
    "per-token heatmaps and their difference cannot be compared, and the heads and FFN methods read different "
    "word sets (a word that is one token for one model may be several for the other); only per-example "
    "instruction scores and the aggregate statistics remain comparable"
)


class TokenizerMismatch(ShiftlensError, ValueError):
    """The base and tuned tokenizers differ and the user did not allow it."""


def tokenizer_difference(base: Any, tuned: Any, texts: Iterable[str] = ()) -> str | None:
    """Why two tokenizers are not interchangeable (vocabulary, or how they split one of ``texts``), else None."""
    base_vocab, tuned_vocab = base.get_vocab(), tuned.get_vocab()
    if base_vocab != tuned_vocab:
        only_base = len(set(base_vocab) - set(tuned_vocab))
        only_tuned = len(set(tuned_vocab) - set(base_vocab))
        moved = sum(1 for t, i in base_vocab.items() if tuned_vocab.get(t, i) != i)
        return (
            f"vocabularies differ: {len(base_vocab)} vs {len(tuned_vocab)} tokens, {only_base} only in the base, "
            f"{only_tuned} only in the tuned model, {moved} with another id"
        )
    for text in texts:
        if base(text, add_special_tokens=False)["input_ids"] != tuned(text, add_special_tokens=False)["input_ids"]:
            return f"they split {text[:60]!r} differently"
    return None


def check_tokenizers(base: Any, tuned: Any, texts: Iterable[str], allow: bool) -> str | None:
    """The difference (None if none); raises `TokenizerMismatch` unless ``allow``."""
    difference = tokenizer_difference(base, tuned, texts)
    if difference is not None and not allow:
        raise TokenizerMismatch(
            f"the base and tuned tokenizers differ ({difference}); {CONSEQUENCES}. "
            "Pass --allow-different-tokenizers to compare them anyway"
        )
    return difference
