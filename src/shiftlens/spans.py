"""Character spans of a prompt (instruction, context) and the token masks they induce.

Rules, applied everywhere:

* A span is a ``[start, end)`` character range of the prompt, or a string standing for its **first**
  occurrence in the prompt (later occurrences are not marked; give ranges to mark them).
* A token belongs to a span when its character range overlaps it: ``a < end and start < b`` for a token
  ``[a, b)``; a zero-width token ``[a, a)`` belongs when ``start <= a < end``. Offsets come from the fast
  tokenizer (``return_offsets_mapping``) so multi-byte characters split over several byte-level tokens
  mark every piece, and a token whose range straddles a span boundary is inside.
* Sentence expansion (used for the paper's TSV, whose spans are fragments that stand for the whole
  sentence holding them): sentences end at a line break, and after ``.``, ``!`` or ``?`` (with any
  closing quotes or brackets) followed by whitespace; surrounding whitespace is not part of a sentence.
  A fragment covers every sentence it touches. Abbreviations such as "e.g. " also end a sentence.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import numpy as np

from shiftlens.errors import ShiftlensError

Span = str | tuple[int, int]
Range = tuple[int, int]

# A sentence ends at a line break, or after terminal punctuation (and closers) followed by whitespace.
_SENTENCE_END = re.compile(r"\n|(?<=[.!?])[\"')\]]*(?=\s)")


class SpanError(ShiftlensError, ValueError):
    """A span that does not fit its prompt (not found, out of range or empty)."""


def locate(prompt: str, span: Span, example_id: str) -> Range:
    """The ``[start, end)`` range of one span in ``prompt``; a string is matched at its first occurrence."""
    if isinstance(span, str):
        if not span:
            raise SpanError(f"example {example_id!r}: empty instruction/context span")
        start = prompt.find(span)
        if start < 0:
            raise SpanError(f"example {example_id!r}: span {span!r} not found in the prompt")
        return start, start + len(span)
    if (
        len(span) != 2
        or not all(isinstance(x, int) and not isinstance(x, bool) for x in span)
        or not 0 <= span[0] < span[1] <= len(prompt)
    ):
        raise SpanError(
            f"example {example_id!r}: span {list(span)!r} is not a [start, end) range inside the "
            f"prompt of {len(prompt)} characters"
        )
    return int(span[0]), int(span[1])


def locate_all(prompt: str, spans: Sequence[Span], example_id: str) -> list[Range]:
    """Every span located in ``prompt`` (see `locate`)."""
    return [locate(prompt, span, example_id) for span in spans]


def sentence_bounds(text: str) -> list[Range]:
    """The sentences of ``text`` as ranges, surrounding whitespace excluded (rule in the module doc)."""
    cuts = [0, *(m.end() for m in _SENTENCE_END.finditer(text)), len(text)]
    bounds = []
    for start, end in zip(cuts, cuts[1:]):
        piece = text[start:end]
        stripped = piece.strip()
        if stripped:
            left = start + len(piece) - len(piece.lstrip())
            bounds.append((left, left + len(stripped)))
    return bounds


def expand_to_sentences(text: str, span: Range, blocked: Sequence[Range] = ()) -> Range:
    """Grow ``span`` to the sentences it touches, stopping short of any ``blocked`` range beside it.

    ``blocked`` holds the fragments of the other kind (context for an instruction, and vice versa), so a
    line like "Input: <context>" keeps the instruction fragment "Input:" apart from its context.
    """
    start, end = span
    touched = [(s, e) for s, e in sentence_bounds(text) if s < end and start < e]
    lo = min([start, *(s for s, _ in touched)])
    hi = max([end, *(e for _, e in touched)])
    for b_start, b_end in blocked:
        if b_end <= start:
            lo = max(lo, b_end)
        elif b_start >= end:
            hi = min(hi, b_start)
    while lo < start and text[lo].isspace():
        lo += 1
    while hi > end and text[hi - 1].isspace():
        hi -= 1
    return lo, hi


def token_mask(offsets: Sequence[Range], ranges: Sequence[Range]) -> np.ndarray:
    """Boolean mask over tokens with character ``offsets``: True where a token overlaps any range."""
    mask = np.zeros(len(offsets), dtype=bool)
    for i, (a, b) in enumerate(offsets):
        for start, end in ranges:
            if (a < end and start < b) if a < b else start <= a < end:
                mask[i] = True
                break
    return mask
