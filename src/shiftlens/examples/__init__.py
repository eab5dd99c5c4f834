"""Examples to explain: read from JSONL or the paper's TSV (`formats`), ratings joined by id (`ratings`).

`load_examples` is the one entry point of the runs: a data file or a list of `Example`s in, the checked
examples with their ratings and groups out.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from shiftlens.errors import ShiftlensError
from shiftlens.examples.formats import (
    DataError,
    Example,
    group_of,
    read_examples,
    read_jsonl,
    read_paper_tsv,
    tsv_spans,
)
from shiftlens.examples.ratings import check_coverage, read_ratings, with_ratings

__all__ = [
    "check_coverage",
    "DataError",
    "Example",
    "group_of",
    "load_examples",
    "read_examples",
    "read_jsonl",
    "read_paper_tsv",
    "read_ratings",
    "require_responses",
    "tsv_spans",
    "with_ratings",
]


def load_examples(
    data: str | Path | Sequence[Example], ratings: str | Path | dict[str, float] | None, limit: int | None
) -> list[Example]:
    """The examples to explain: a data file or a list, ratings joined by id, the first ``limit`` kept."""
    if isinstance(data, (str, Path)):
        examples = read_examples(data)
    else:
        examples = [e.with_group() for e in data]
        if not examples:
            raise ShiftlensError("no examples given: the list is empty")
        ids = [e.id for e in examples]
        if len(set(ids)) != len(ids):
            raise ShiftlensError(f"duplicate example ids: {sorted({i for i in ids if ids.count(i) > 1})}")
    if ratings is not None:
        table = ratings if isinstance(ratings, dict) else read_ratings(ratings)
        examples = with_ratings(
            examples, table, "the ratings" if isinstance(ratings, dict) else f"the ratings in {ratings}"
        )
    if limit is not None:
        if limit < 1:
            raise ShiftlensError(f"--limit must be at least 1, got {limit}")
        examples = examples[:limit]
    return examples


def require_responses(
    examples: Sequence[Example], why: str = "responses=data explains the data's own responses"
) -> None:
    """Refuse examples without a response where the data's responses are asked for (nothing is generated then)."""
    missing = [e.id for e in examples if e.response is None]
    if missing:
        shown = ", ".join(repr(i) for i in missing[:5]) + (", ..." if len(missing) > 5 else "")
        raise DataError(
            f"{why}, but {len(missing)} of {len(examples)} examples have none ({shown}); add them to the data "
            "or let the tuned model generate them (responses=tuned)"
        )
