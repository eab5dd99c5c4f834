"""The attribution run format: one unit per example, read back as `ExampleAttribution` records.

A run directory (kind ``"attribution"``, see `shiftlens.storage`) holds, per example, a unit whose
arrays are ``{"attribution": float32 (N prompt tokens × M response tokens)}`` and whose meta holds the
fields of `ExampleAttribution` other than the matrix. Analyses read runs only through this module.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from shiftlens.runs.lifecycle import unit_file_name
from shiftlens.runs.manifest import check_kind
from shiftlens.storage import RunDirectory, read_units

RUN_KIND = "attribution"


@dataclass
class ExampleAttribution:
    """One example's attribution matrix with the tokens and spans that label its rows and columns.

    ``prompt_offsets``/``response_offsets`` are [start, end) character offsets into ``prompt`` and
    ``response``; ``instruction_mask`` marks the prompt tokens inside an instruction span.
    """

    id: str
    prompt: str
    response: str
    prompt_tokens: list[str]
    prompt_offsets: list[tuple[int, int]]
    response_tokens: list[str]
    response_offsets: list[tuple[int, int]]
    instruction_mask: list[bool]
    attribution: np.ndarray
    group: str | None = None
    rating: float | None = None
    instruction_spans: list[tuple[int, int]] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        n, m = len(self.prompt_tokens), len(self.response_tokens)
        if self.attribution.shape != (n, m):
            raise ValueError(f"example {self.id!r}: attribution is {self.attribution.shape}, tokens are {(n, m)}")
        if len(self.instruction_mask) != n:
            raise ValueError(f"example {self.id!r}: instruction mask has {len(self.instruction_mask)} rows")

    def meta(self) -> dict[str, Any]:
        """Everything but the matrix, as JSON-safe data."""
        data = asdict(self)
        del data["attribution"]
        return data

    @classmethod
    def from_unit(cls, meta: dict[str, Any], arrays: dict[str, np.ndarray]) -> ExampleAttribution:
        """Rebuild a record from a stored unit."""
        fields = dict(meta)
        for key in ("prompt_offsets", "response_offsets", "instruction_spans"):
            fields[key] = [tuple(x) for x in fields.get(key, [])]
        return cls(attribution=arrays["attribution"], **fields)


def unit_name(example_id: str) -> str:
    """A file-safe, bounded unit name for an example id (`unit_file_name`; the id stays in the record)."""
    return unit_file_name(example_id)


def example_unit(record: ExampleAttribution) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """The meta and arrays one example's record is stored as (the matrix in float32)."""
    return record.meta(), {"attribution": np.asarray(record.attribution, dtype=np.float32)}


def write_example(run: RunDirectory, record: ExampleAttribution) -> None:
    """Store one example's record as a unit of an open attribution run."""
    run.write_unit(unit_name(record.id), *example_unit(record))


def read_attribution_run(path: str | Path) -> tuple[dict[str, Any], list[ExampleAttribution]]:
    """The manifest and every example record of a finished (or partial) attribution run."""
    manifest = check_kind(path, RUN_KIND)
    return manifest, [ExampleAttribution.from_unit(meta, arrays) for _, meta, arrays in read_units(path)]
