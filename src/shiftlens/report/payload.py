"""Per-example attribution data for the report's side-by-side view, stored compactly for the browser.

Each model's matrix is put on the paper's 0..L integer scale per response token (column), before the
threshold b is applied, i.e. ceil(L·x/max) with negatives at 0, the form of the authors' released
matrices (`shiftlens.density.scale_columns` with b = 0); it is kept as one byte per cell, zlib-compressed
and base64-encoded, and the browser inflates it with the built-in ``DecompressionStream`` only when an
example is opened, so hundreds of examples load fast. Densities and scores use the full parameters.
"""

from __future__ import annotations

import base64
import zlib
from collections.abc import Iterable, Sequence
from dataclasses import replace
from typing import Any

import numpy as np

from shiftlens.attribution.records import ExampleAttribution
from shiftlens.density import DensityParams, importance_density, instruction_score, scale_columns
from shiftlens.errors import ShiftlensError

SNIPPET_CHARS = 120
PAPER_PARAMS = DensityParams()


def encode_levels(levels: np.ndarray) -> str:
    """An integer matrix 0..255 as base64 of its zlib-compressed row-major bytes."""
    data = np.ascontiguousarray(np.asarray(levels), dtype=np.uint8).tobytes()
    return base64.b64encode(zlib.compress(data, 6)).decode("ascii")


def decode_levels(text: str, shape: tuple[int, int]) -> np.ndarray:
    """Inverse of `encode_levels` (what the browser does), for tests and tools."""
    return np.frombuffer(zlib.decompress(base64.b64decode(text)), dtype=np.uint8).reshape(shape)


PIECE_MARKS = str.maketrans({"\u2581": " ", "\u0120": " ", "\u010a": "\n"})  # SentencePiece ▁, byte-level Ġ Ċ


def token_texts(text: str, tokens: Sequence[str], offsets: Sequence[tuple[int, int]]) -> list[str]:
    """Each token's display text: the text from the previous token's end to its own end.

    Tokenizers trim the space before a word from its offsets (byte-level BPE with ``trim_offsets``,
    SentencePiece's ``▁``), so offset slices alone read "Thewordis…"; taking the gap with the token keeps
    the tokenizer's own spacing and the tokens join back to the text. Text before the first token and after
    the last one is kept with them. A token without usable offsets shows its piece string with the space
    marks (``▁``, ``Ġ``, ``Ċ``) as the characters they stand for; a token sharing characters already shown
    (the bytes of one emoji) shows as an empty string.
    """
    out, cursor, last = [], 0, None
    for i, token in enumerate(tokens):
        start, end = offsets[i] if i < len(offsets) else (0, 0)
        if 0 <= start < end <= len(text):
            out.append(text[min(cursor, start) : end] if end > cursor else "")
            cursor, last = max(cursor, end), len(out) - 1
        else:
            out.append(str(token).translate(PIECE_MARKS))
    if last is not None:
        out[last] += text[cursor:]
    return out


def _side(record: ExampleAttribution, params: DensityParams) -> dict[str, Any]:
    """One model's view of an example: tokens as text, mask, encoded levels, densities and score."""
    levels = scale_columns(record.attribution, replace(params, threshold=0))
    density = importance_density(record.attribution, params)
    mask = np.asarray(record.instruction_mask, dtype=bool)
    return {
        "prompt": token_texts(record.prompt, record.prompt_tokens, record.prompt_offsets),
        "response": token_texts(record.response, record.response_tokens, record.response_offsets),
        "mask": [int(x) for x in mask],
        "n": int(levels.shape[0]),
        "m": int(levels.shape[1]),
        "z": encode_levels(np.clip(levels, 0, 255)),
        "density": [round(float(x), 4) for x in density],
        "score": round(instruction_score(density, mask), 6),
    }


def _by_id(records: Iterable[ExampleAttribution], label: str) -> dict[str, ExampleAttribution]:
    out: dict[str, ExampleAttribution] = {}
    for record in records:
        if record.id in out:
            raise ShiftlensError(f"{label} run: example id {record.id!r} appears twice")
        out[record.id] = record
    return out


def example_entry(
    base: ExampleAttribution | None, tuned: ExampleAttribution | None, params: DensityParams = PAPER_PARAMS
) -> dict[str, Any]:
    """The report entry of one example from its base and/or tuned record (at least one)."""
    first = base or tuned
    if first is None:
        raise ShiftlensError("an example needs a base or a tuned record")
    if base is not None and tuned is not None and base.id != tuned.id:
        raise ShiftlensError(f"base example {base.id!r} paired with tuned example {tuned.id!r}")
    entry: dict[str, Any] = {
        "id": first.id,
        "group": next((r.group for r in (base, tuned) if r is not None and r.group is not None), None),
        "rating": next((r.rating for r in (base, tuned) if r is not None and r.rating is not None), None),
        "snippet": " ".join(first.prompt.split())[:SNIPPET_CHARS],
    }
    for name, record in (("base", base), ("tuned", tuned)):
        entry[name] = _side(record, params) if record is not None else None
    if base is not None and tuned is not None and entry["tuned"]["prompt"] == entry["base"]["prompt"]:
        entry["tuned"]["prompt"] = None  # same prompt tokens: stored once, under base
    return entry


def examples_payload(
    base_records: Iterable[ExampleAttribution],
    tuned_records: Iterable[ExampleAttribution],
    params: DensityParams = PAPER_PARAMS,
) -> dict[str, Any]:
    """The report's ``examples`` section from a base and a tuned attribution run, paired by example id.

    Examples present in only one run are kept with the other side ``None``; order follows the base run,
    then tuned-only examples. ``params`` sets the heatmap levels L and the densities (paper defaults).
    """
    base, tuned = _by_id(base_records, "base"), _by_id(tuned_records, "tuned")
    ids = list(base) + [i for i in tuned if i not in base]
    return {
        "levels": params.levels,
        "examples": [example_entry(base.get(i), tuned.get(i), params) for i in ids],
    }
