"""Character spans of a prompt (instruction, context) and the token masks they induce.

Rules, applied everywhere:

* A span is a ``[start, end)`` character range of the prompt, or a string standing for its **first**
  occurrence in the prompt (later occurrences are not marked; give ranges to mark them). Located spans
  are trimmed of surrounding whitespace, so a token that touches a span only by a space or a line break
  (a byte-level BPE token ``" If"`` after the span ``"Input: "``) is not part of it.
* A token belongs to a span when its character range overlaps it: ``a < end and start < b`` for a token
  ``[a, b)``; a zero-width token ``[a, a)`` belongs when ``start <= a < end``. Offsets come from the fast
  tokenizer (``return_offsets_mapping``) so multi-byte characters split over several byte-level tokens
  mark every piece, and a token whose range straddles a span boundary is inside.
* Sentence expansion (used for the paper's TSV, whose spans are fragments that stand for the whole
  sentence holding them), two rules:

  - ``"sound"`` (shiftlens): sentences end at a line break, and after ``.``, ``!`` or ``?`` (with any
    closing quotes or brackets) followed by whitespace. A fragment grows to every sentence it touches but
    never across a fragment of the other kind (`expand_to_sentences`).
  - ``"paper"`` (the authors' code): sentences end at a line break and after ``.``, ``!``, ``?`` or ``:``
    directly followed by whitespace; a fragment stands for the sentences it touches, each with an
    ``Input:`` label stripped (`paper_sentences`).

  Surrounding whitespace is never part of a sentence; abbreviations such as "e.g. " also end one.
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
# The authors' rule: a line break, or ., !, ? or : directly followed by whitespace.
_PAPER_SENTENCE_END = re.compile(r"\n|(?<=[.!?:])(?=\s)")
_INPUT_LABEL = "Input:"


class SpanError(ShiftlensError, ValueError):
    """A span that does not fit its prompt (not found, out of range or empty)."""


def trim(text: str, span: Range) -> Range:
    """``span`` without the whitespace at its ends (an all-whitespace span becomes empty at its start)."""
    start, end = span
    piece = text[start:end]
    if not piece.strip():
        return start, start
    left = start + len(piece) - len(piece.lstrip())
    return left, left + len(piece.strip())


def locate(prompt: str, span: Span, example_id: str) -> Range:
    """The ``[start, end)`` range of one span in ``prompt``, whitespace at its ends trimmed.

    A string is matched at its first occurrence; a span of whitespace only is an error.
    """
    if isinstance(span, str):
        if not span:
            raise SpanError(f"example {example_id!r}: empty instruction/context span")
        start = prompt.find(span)
        if start < 0:
            raise SpanError(f"example {example_id!r}: span {span!r} not found in the prompt")
        return _trimmed(prompt, (start, start + len(span)), span, example_id)
    if (
        len(span) != 2
        or not all(isinstance(x, int) and not isinstance(x, bool) for x in span)
        or not 0 <= span[0] < span[1] <= len(prompt)
    ):
        raise SpanError(
            f"example {example_id!r}: span {list(span)!r} is not a [start, end) range inside the "
            f"prompt of {len(prompt)} characters"
        )
    return _trimmed(prompt, (int(span[0]), int(span[1])), list(span), example_id)


def _trimmed(prompt: str, span: Range, given: object, example_id: str) -> Range:
    start, end = trim(prompt, span)
    if start == end:
        raise SpanError(f"example {example_id!r}: span {given!r} holds only whitespace")
    return start, end


def locate_all(prompt: str, spans: Sequence[Span], example_id: str) -> list[Range]:
    """Every span located in ``prompt`` (see `locate`)."""
    return [locate(prompt, span, example_id) for span in spans]


def sentence_bounds(text: str, rule: str = "sound") -> list[Range]:
    """The sentences of ``text`` as ranges, surrounding whitespace excluded (``rule``: see the module doc)."""
    pattern = {"sound": _SENTENCE_END, "paper": _PAPER_SENTENCE_END}[rule]
    cuts = [0, *(m.end() for m in pattern.finditer(text)), len(text)]
    trimmed = (trim(text, piece) for piece in zip(cuts, cuts[1:]))
    return [(start, end) for start, end in trimmed if start < end]


def paper_sentences(text: str, span: Range) -> list[Range]:
    """The authors' instruction span of a fragment: the sentences it touches (paper rule), ``Input:`` stripped."""
    out = []
    for start, end in sentence_bounds(text, "paper"):
        if start < span[1] and span[0] < end:
            start, end = _strip_input_label(text, start, end)
            if start < end:
                out.append((start, end))
    return out


def _strip_input_label(text: str, start: int, end: int) -> Range:
    """``[start, end)`` without ``Input:`` labels (and the whitespace beside them) at either end."""
    while start < end:
        piece = text[start:end]
        if piece.startswith(_INPUT_LABEL):
            start, end = trim(text, (start + len(_INPUT_LABEL), end))
        elif piece.endswith(_INPUT_LABEL):
            start, end = trim(text, (start, end - len(_INPUT_LABEL)))
        else:
            break
    return start, end


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
