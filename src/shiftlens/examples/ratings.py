"""Ratings of responses: the paper's AnnotatedDataset.tsv read by example id, and joined onto examples."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

from shiftlens.errors import warn
from shiftlens.examples.formats import DataError, Example, tsv_rows

RATING_COLUMNS = ("File", "Model", "Prompt", "Reference", "Instruct", "Response", "Rating")


def read_ratings(path: str | Path, model: str | None = None) -> dict[str, float]:
    """Ratings by example id from an AnnotatedDataset.tsv file (File is ``<id>.pkl``; -1 = not rated).

    ``model`` keeps one Model column value; without it, an id rated under several models is an error.
    """
    path = Path(path)
    ratings: dict[str, float] = {}
    rated_by: dict[str, tuple[str, int]] = {}
    models = set()
    for number, row in tsv_rows(path, RATING_COLUMNS):
        models.add(row["Model"])
        if model is not None and row["Model"] != model:
            continue
        example_id = row["File"].strip().removesuffix(".pkl")
        try:
            value = float(row["Rating"])
        except ValueError as exc:
            raise DataError(f"{path}:{number}: rating {row['Rating']!r} is not a number") from exc
        if not math.isfinite(value):
            raise DataError(f"{path}:{number}: rating {row['Rating']!r} is not finite")
        if value < 0:
            continue
        if example_id in rated_by:
            other, line = rated_by[example_id]
            raise DataError(
                f"{path}:{number}: {example_id!r} is rated again (first on line {line}, model {other}); "
                "choose one model"
            )
        ratings[example_id] = value
        rated_by[example_id] = (row["Model"], number)
    if model is not None and model not in models:
        raise DataError(f"{path}: no ratings of model {model!r}; it has {', '.join(sorted(models))}")
    return ratings


def check_coverage(ids: Sequence[str], ratings: dict[str, float], source: str = "the ratings") -> int:
    """How many of ``ids`` are rated: none is an error (the rating tables would be empty), some a warning."""
    matched, total = sum(i in ratings for i in ids), len(ids)
    if total and not matched:
        raise DataError(
            f"{source} match none of the example ids (0 of {total} rated; the ratings are for ids like "
            f"{', '.join(repr(i) for i in sorted(ratings)[:3]) or 'none'}, the examples are "
            f"{', '.join(repr(i) for i in ids[:3])}, ...); check that both files use the same ids"
        )
    if matched < total:
        warn(f"{source} rate {matched} of the {total} examples; the other {total - matched} have no rating")
    return matched


def with_ratings(examples: list[Example], ratings: dict[str, float], source: str = "the ratings") -> list[Example]:
    """The examples with ratings joined by id (a joined rating replaces the example's own); `check_coverage`."""
    check_coverage([e.id for e in examples], ratings, source)
    return [replace(e, rating=ratings[e.id]) if e.id in ratings else e for e in examples]
