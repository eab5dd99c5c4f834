"""The authors' released attribution results (pickles + TSVs) as shiftlens `ExampleAttribution` records.

Layout (as in ../shared/paper-data): ``datasets/FinalDataset.tsv`` (prompts and instruction spans),
``datasets/AnnotatedDataset.tsv`` (ratings of the tuned responses) and
``results/attribution_interpret/ifa_{llama,vicuna}_7b/<id>.pkl``, each a dict with ``ID``, ``Input``
and ``Output`` (SentencePiece piece strings), ``Reference`` and ``Explain`` (Input × Output matrix,
already scaled to integers 0..10). Pickles are read with `shiftlens.safe_pickle` only.

Token offsets are rebuilt from the piece strings: ``▁`` is a space, ``<0xNN>`` one raw byte (bytes of a
multi-byte character all map to that character), and the single leading space SentencePiece adds is
dropped, so the decoded ``Input`` is the prompt itself (checked for every example; in the released
data it has no BOS, system prompt or chat template). A piece's range excludes its leading ``▁``.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from shiftlens.attribution.records import ExampleAttribution
from shiftlens.errors import ShiftlensError
from shiftlens.evidence import DEFAULT_PROTOCOL
from shiftlens.examples import Example, read_paper_tsv, read_ratings
from shiftlens.progress import progress
from shiftlens.safe_pickle import load_restricted
from shiftlens.spans import token_mask

BASE_RUN = "ifa_llama_7b"
TUNED_RUN = "ifa_vicuna_7b"
TUNED_MODEL = "vicuna_7B"  # the Model column of AnnotatedDataset.tsv holding the tuned responses' ratings
RESULTS = Path("results") / "attribution_interpret"
FINAL_DATASET = Path("datasets") / "FinalDataset.tsv"
ANNOTATED_DATASET = Path("datasets") / "AnnotatedDataset.tsv"
REQUIRED_KEYS = ("ID", "Input", "Output", "Explain")

_BYTE_PIECE = re.compile(r"<0x([0-9A-Fa-f]{2})>")
_SPACE_MARK = "\u2581"


class PaperDataError(ShiftlensError):
    """The released data directory or one of its files is missing or malformed."""


def decode_pieces(pieces: Sequence[str]) -> tuple[str, list[tuple[int, int]]]:
    """Text of SentencePiece piece strings and each piece's [start, end) character range in it.

    Invalid UTF-8 byte sequences decode to U+FFFD, one character per byte.
    """
    buffer = bytearray()
    byte_ranges = []
    for piece in pieces:
        start = len(buffer)
        match = _BYTE_PIECE.fullmatch(piece)
        if match:
            buffer.append(int(match.group(1), 16))
        else:
            body = piece.replace(_SPACE_MARK, " ")
            if body.strip(" "):
                start += len(body) - len(body.lstrip(" "))
            buffer += body.encode("utf-8")
        byte_ranges.append((start, len(buffer)))
    text = buffer.decode("utf-8", errors="surrogateescape")
    char_of_byte = np.repeat(
        np.arange(len(text) + 1), [len(c.encode("utf-8", errors="surrogateescape")) for c in text] + [1]
    )
    offsets = [
        (int(char_of_byte[s]), int(char_of_byte[e - 1]) + 1 if e > s else int(char_of_byte[s])) for s, e in byte_ranges
    ]
    text = "".join("\ufffd" if "\udc80" <= c <= "\udcff" else c for c in text)
    if text.startswith(" "):  # SentencePiece's dummy prefix space
        text = text[1:]
        offsets = [(max(s - 1, 0), max(e - 1, 0)) for s, e in offsets]
    return text, offsets


def read_released_example(path: str | Path) -> dict[str, Any]:
    """One released pickle, checked: string ID, piece lists, and an Input × Output matrix."""
    path = Path(path)
    data = load_restricted(path)
    if not isinstance(data, dict) or any(key not in data for key in REQUIRED_KEYS):
        keys = sorted(data) if isinstance(data, dict) else type(data).__name__
        raise PaperDataError(f"{path}: expected a dict with keys {', '.join(REQUIRED_KEYS)}, found {keys}")
    pieces_ok = all(isinstance(data[k], list) and all(isinstance(p, str) for p in data[k]) for k in ("Input", "Output"))
    explain = data["Explain"]
    if not isinstance(data["ID"], str) or not pieces_ok or not isinstance(explain, np.ndarray):
        raise PaperDataError(f"{path}: ID must be a string, Input/Output lists of strings, Explain an array")
    if explain.size == 0 and not data["Output"]:  # an empty response is stored as a shape-(0,) array
        data["Explain"] = explain = explain.reshape(len(data["Input"]), 0)
    if explain.shape != (len(data["Input"]), len(data["Output"])):
        raise PaperDataError(
            f"{path}: Explain is {explain.shape} but there are {len(data['Input'])} Input and "
            f"{len(data['Output'])} Output tokens"
        )
    return data


def prompt_offsets(pieces: Sequence[str], prompt: str, source: str) -> list[tuple[int, int]]:
    """Character ranges of the Input pieces in `prompt`; their decoded text must be the prompt itself."""
    text, offsets = decode_pieces(pieces)
    if text != prompt:
        where = next((i for i, (a, b) in enumerate(zip(text, prompt)) if a != b), min(len(text), len(prompt)))
        raise PaperDataError(
            f"{source}: the Input tokens decode to a text that differs from the prompt at character {where}: "
            f"{text[where : where + 30]!r} vs {prompt[where : where + 30]!r}"
        )
    return offsets


@dataclass
class PaperRuns:
    """The base and tuned runs rebuilt from released data, with the tuned ratings and what was dropped."""

    base: list[ExampleAttribution]
    tuned: list[ExampleAttribution]
    ratings: dict[str, float]
    dropped: dict[str, list[str]] = field(default_factory=dict)


def _released_record(path: Path, example: Example, rating: float | None) -> ExampleAttribution:
    data = read_released_example(path)
    if data["ID"] != example.id:
        raise PaperDataError(f"{path}: holds example {data['ID']!r}, expected {example.id!r}")
    offsets = prompt_offsets(data["Input"], example.prompt, str(path))
    response, response_offsets = decode_pieces(data["Output"])
    return ExampleAttribution(
        id=example.id,
        prompt=example.prompt,
        response=response,
        prompt_tokens=list(data["Input"]),
        prompt_offsets=offsets,
        response_tokens=list(data["Output"]),
        response_offsets=response_offsets,
        instruction_mask=token_mask(offsets, example.instruction).tolist(),
        attribution=data["Explain"],
        group=example.group,
        rating=rating,
        instruction_spans=list(example.instruction),
        extra={"source": str(path)},
    )


def load_paper_runs(
    paper_dir: str | Path, tuned_model: str = TUNED_MODEL, protocol: str = DEFAULT_PROTOCOL
) -> PaperRuns:
    """LLaMA-7B (base) and Vicuna-7B (tuned) records of a released-data directory, with Vicuna's ratings.

    Examples are the rows of FinalDataset.tsv (spans grown to sentences by `shiftlens.examples` under
    ``protocol``'s rule); a row with no pickle in a run, or a pickle with no row, is left out and listed
    in ``dropped``.
    """
    paper_dir = Path(paper_dir)
    for needed in (FINAL_DATASET, ANNOTATED_DATASET, RESULTS / BASE_RUN, RESULTS / TUNED_RUN):
        if not (paper_dir / needed).exists():
            raise PaperDataError(f"{paper_dir}: missing {needed}; expected the layout of the released data")
    examples = read_paper_tsv(paper_dir / FINAL_DATASET, protocol)
    ratings = read_ratings(paper_dir / ANNOTATED_DATASET, model=tuned_model)
    known = {example.id for example in examples}
    runs: dict[str, list[ExampleAttribution]] = {}
    dropped: dict[str, list[str]] = {}
    for name, run in (("base", BASE_RUN), ("tuned", TUNED_RUN)):
        directory = paper_dir / RESULTS / run
        present = {path.stem for path in directory.glob("*.pkl")}
        rows = [e for e in examples if e.id in present]
        runs[name] = [
            _released_record(directory / f"{e.id}.pkl", e, ratings.get(e.id) if name == "tuned" else None)
            for e in progress(rows, total=len(rows), desc=f"reading {run}", unit="example")
        ]
        dropped[f"{name}_no_pickle"] = sorted(known - present)
        dropped[f"{name}_no_row"] = sorted(present - known)
    return PaperRuns(runs["base"], runs["tuned"], ratings, dropped)
