"""Example files: JSONL and the paper's TSV read into `Example`s, and the paper's groups.

JSONL, one object a line: ``id`` and ``prompt`` (required), ``response`` (optional: generated when
absent), ``instruction`` and ``context`` (lists of spans, each a string found in the prompt or a
``[start, end)`` character range; ``instruction_spans``/``context_spans`` are accepted aliases),
``rating`` and ``group`` (optional). Other fields are ignored, unless they look like a misspelled one
(``instrution``, anything with ``span``): that is an error naming the accepted fields.

The paper's TSV (FinalDataset.tsv): columns ``ID``, ``Prompt``, ``Response``, ``Instruct&Context``;
``/n`` stands for a newline in every text field. The span column holds instruction fragments separated
by ``|||``, then optionally ``&&&`` and context fragments (also ``|||``-separated). Each fragment stands
for the whole prompt sentence holding it, so it is located (first occurrence) and grown to sentences by
one of two rules (``protocol``, see `shiftlens.spans`): ``"sound"`` expands with
`shiftlens.spans.expand_to_sentences` (context fragments first, stopping at instruction fragments, then
instruction fragments, stopping at the expanded context, so "Input: <context>" keeps both apart);
``"paper"`` takes the sentences each fragment touches under the authors' rule, ``Input:`` labels stripped
(`shiftlens.spans.paper_sentences`).
"""

from __future__ import annotations

import difflib
import json
import math
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from shiftlens.errors import ShiftlensError, warn
from shiftlens.evidence import DEFAULT_PROTOCOL, check_protocol
from shiftlens.spans import Range, Span, SpanError, expand_to_sentences, locate_all, paper_sentences

GROUP_PREFIXES = {"user_oriented_task_": "self_instruct", "lima_author_": "lima", "mtbench_": "mt_bench"}
OTHER_GROUP = "other"
TSV_COLUMNS = ("ID", "Prompt", "Response", "Instruct&Context")
JSONL_FIELDS = (
    "id",
    "prompt",
    "response",
    "instruction",
    "context",
    "instruction_spans",
    "context_spans",
    "rating",
    "group",
)
# Fields of a planted pair's prompts (docs/validation.md) that `shiftlens validate` reads and examples ignore.
VALIDATION_FIELDS = ("control_spans", "position", "task", "reference")


class DataError(ShiftlensError, ValueError):
    """A malformed data or ratings file; the message names the file and line."""


@dataclass
class Example:
    """One prompt to explain, with its response (None: generate one), spans, rating and group."""

    id: str
    prompt: str
    response: str | None = None
    instruction: list[Span] = field(default_factory=list)
    context: list[Span] = field(default_factory=list)
    rating: float | None = None
    group: str | None = None

    def with_group(self) -> Example:
        """This example with its group filled in from the id when it has none (see `group_of`)."""
        return self if self.group else replace(self, group=group_of(self.id))


def group_of(example_id: str) -> str:
    """The paper's data group of an id: self_instruct, lima or mt_bench by prefix; else "other"."""
    for prefix, group in GROUP_PREFIXES.items():
        if example_id.startswith(prefix):
            return group
    return OTHER_GROUP


def _lines(path: Path) -> Iterator[tuple[int, str]]:
    """(1-based line number, text) of each non-blank line, decoded as strict UTF-8."""
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise DataError(f"cannot read {path}: {exc.strerror or exc}") from exc
    for number, line in enumerate(raw.split(b"\n"), start=1):
        try:
            text = line.decode("utf-8").removesuffix("\r")
        except UnicodeDecodeError as exc:
            raise DataError(f"{path}:{number}: not valid UTF-8 (byte {exc.start})") from exc
        if text.strip():
            yield number, text


def _where(path: Path, line: int) -> str:
    return f"{path}:{line}"


def _rating(value: Any, where: str) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise DataError(f"{where}: rating must be a finite number, got {value!r}")
    return float(value)


def _json_spans(record: dict[str, Any], key: str, where: str) -> list[Span]:
    alias = f"{key}_spans"
    if key in record and alias in record:
        raise DataError(f"{where}: give {key!r} or {alias!r}, not both")
    spans = record.get(key, record.get(alias, []))
    if not isinstance(spans, list):
        raise DataError(f"{where}: {key!r} must be a list of spans")
    out: list[Span] = []
    for span in spans:
        if isinstance(span, str) and span:
            out.append(span)
        elif isinstance(span, list) and len(span) == 2 and all(type(x) is int for x in span):
            out.append((span[0], span[1]))
        else:
            raise DataError(f"{where}: span {span!r} in {key!r} is neither a non-empty string nor [start, end]")
    return out


def _text_field(record: dict[str, Any], key: str, where: str, required: bool) -> str | None:
    value = record.get(key)
    if value is None and not required:
        return None
    if not isinstance(value, str) or not value.strip():
        what = "missing" if value is None else "empty or not a string"
        raise DataError(f"{where}: field {key!r} is {what}")
    return value


def _check_spans(example: Example, where: str) -> None:
    try:
        locate_all(example.prompt, [*example.instruction, *example.context], example.id)
    except SpanError as exc:
        raise DataError(f"{where}: {exc}") from exc


def read_jsonl(path: str | Path) -> list[Example]:
    """Examples of a JSONL file (format in the module doc)."""
    path = Path(path)
    examples = []
    for number, line in _lines(path):
        where = _where(path, number)
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            raise DataError(f"{where}: invalid JSON ({exc.msg})") from exc
        if not isinstance(record, dict):
            raise DataError(f"{where}: expected a JSON object, got {type(record).__name__}")
        _check_field_names(record, where)
        example_id = record.get("id")
        if isinstance(example_id, int) and not isinstance(example_id, bool):
            example_id = str(example_id)
        if not isinstance(example_id, str) or not example_id.strip():
            raise DataError(f"{where}: field 'id' is missing or empty")
        group = _text_field(record, "group", where, required=False)
        example = Example(
            id=example_id,
            prompt=_text_field(record, "prompt", where, required=True),
            response=_text_field(record, "response", where, required=False),
            instruction=_json_spans(record, "instruction", where),
            context=_json_spans(record, "context", where),
            rating=_rating(record.get("rating"), where),
            group=group,
        )
        _check_spans(example, where)
        examples.append((number, example))
    if not examples:
        raise DataError(f"{path}: no examples (the file is empty); one JSON object a line, with id and prompt")
    unique = _unique(path, examples)
    if not any(example.instruction for example in unique):
        warn(f"{path}: no example has an instruction span, so every instruction score is 0 (field 'instruction')")
    return unique


def _check_field_names(record: dict[str, Any], where: str) -> None:
    """A field that looks like a misspelled accepted one (``instrution``, ``spans``) is an error, not ignored."""
    for key in record:
        if key in JSONL_FIELDS or key in VALIDATION_FIELDS:
            continue
        absent = [name for name in JSONL_FIELDS if name not in record]  # "idx" beside "id" is another field
        close = difflib.get_close_matches(key.lower(), absent, n=1, cutoff=0.8)
        if close or "span" in key.lower():
            hint = f"did you mean {close[0]!r}? " if close else ""
            raise DataError(f"{where}: unknown field {key!r}; {hint}accepted fields: {', '.join(JSONL_FIELDS)}")


def _unique(path: Path, numbered: list[tuple[int, Example]]) -> list[Example]:
    seen: dict[str, int] = {}
    for number, example in numbered:
        if example.id in seen:
            raise DataError(f"{path}:{number}: duplicate id {example.id!r} (first on line {seen[example.id]})")
        seen[example.id] = number
    return [example.with_group() for _, example in numbered]


def tsv_rows(path: Path, columns: tuple[str, ...]) -> Iterator[tuple[int, dict[str, str]]]:
    """Rows of a tab-separated file whose header is exactly ``columns``, ``/n`` turned into newlines."""
    lines = _lines(path)
    first = next(lines, None)
    if first is None:
        raise DataError(f"{path}: empty file; expected a header {chr(9).join(columns)!r}")
    number, header = first
    if tuple(header.split("\t")) != columns:
        raise DataError(f"{path}:{number}: header must be {' | '.join(columns)}, got {header.split(chr(9))}")
    for number, line in lines:
        cells = line.split("\t")
        if len(cells) != len(columns):
            raise DataError(f"{path}:{number}: {len(cells)} tab-separated columns, expected {len(columns)}")
        for name, cell in zip(columns, cells):
            if not cell.strip():
                raise DataError(f"{path}:{number}: empty {name!r} field")
        yield number, {name: cell.replace("/n", "\n") for name, cell in zip(columns, cells)}


def tsv_spans(
    prompt: str, column: str, example_id: str, protocol: str = DEFAULT_PROTOCOL
) -> tuple[list[Range], list[Range]]:
    """Instruction and context ranges (sorted, unique) of a paper TSV span column, grown to sentences."""
    check_protocol(protocol)
    instruction_text, _, context_text = column.partition("&&&")
    fragments = [[s for s in part.split("|||") if s.strip()] for part in (instruction_text, context_text)]
    instruction, context = (locate_all(prompt, part, example_id) for part in fragments)
    if protocol == "paper":
        return tuple(sorted({s for r in part for s in paper_sentences(prompt, r)}) for part in (instruction, context))
    context = sorted({expand_to_sentences(prompt, r, blocked=instruction) for r in context})
    return sorted({expand_to_sentences(prompt, r, blocked=context) for r in instruction}), context


def read_paper_tsv(path: str | Path, protocol: str = DEFAULT_PROTOCOL) -> list[Example]:
    """Examples of the paper's FinalDataset.tsv format, spans grown by ``protocol``'s rule (module doc)."""
    path = Path(path)
    examples = []
    for number, row in tsv_rows(path, TSV_COLUMNS):
        example_id, prompt = row["ID"].strip(), row["Prompt"]
        try:
            instruction, context = tsv_spans(prompt, row["Instruct&Context"], example_id, protocol)
        except SpanError as exc:
            raise DataError(f"{_where(path, number)}: {exc}") from exc
        if not instruction:
            raise DataError(f"{_where(path, number)}: example {example_id!r} has no instruction span")
        examples.append((number, Example(example_id, prompt, row["Response"], instruction, context)))
    if not examples:
        raise DataError(f"{path}: no examples after the header")
    return _unique(path, examples)


def read_examples(path: str | Path) -> list[Example]:
    """Examples of a ``.jsonl`` file or a paper-format ``.tsv`` file, chosen by suffix."""
    path = Path(path)
    if path.suffix.lower() in (".jsonl", ".json"):
        return read_jsonl(path)
    if path.suffix.lower() in (".tsv", ".txt"):
        return read_paper_tsv(path)
    raise DataError(f"{path}: unknown data format {path.suffix!r}; use .jsonl or the paper's .tsv")
