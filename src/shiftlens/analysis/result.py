"""The one shape of an analysis result: JSON-safe content, `to_json()`, and `save(dir)` for its files.

Every analysis (`analyze_instructions`, `analyze_heads`, `analyze_ffn`) takes a base and a tuned run
directory and returns a subclass of `AnalysisResult`; computing never writes a file, `save` does. The
content stays one JSON-safe dict (what ``results.json`` and the report read); the subclasses name its
parts as typed properties and know which files the analysis writes.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, ClassVar, TypeVar

from shiftlens.storage import atomic_write_json

R = TypeVar("R", bound="AnalysisResult")
JSON_FILES = {"instructions": "result.json", "heads": "heads_analysis.json", "ffn": "ffn_analysis.json"}


@dataclass(frozen=True)
class AnalysisResult:
    """A finished base-vs-tuned analysis; ``data`` is its JSON-safe content (read it by key or `to_json`)."""

    data: dict[str, Any]
    JSON_FILE: ClassVar[str]  # the JSON's name under `save`'s directory (`JSON_FILES`)

    def to_json(self) -> dict[str, Any]:
        """The content as written to JSON (``protocol``, ``finding`` and the analysis's own keys)."""
        return self.data

    def __getitem__(self, key: str) -> Any:
        return self.data[key]

    def __contains__(self, key: str) -> bool:
        return key in self.data

    def get(self, key: str, default: Any = None) -> Any:
        """``data[key]``, or ``default`` where the analysis did not produce that part."""
        return self.data.get(key, default)

    @property
    def protocol(self) -> str:
        """The analysis protocol it ran under (`shiftlens.evidence.PROTOCOLS`)."""
        return self.data["protocol"]

    @property
    def finding(self) -> list[dict[str, Any]]:
        """Its claims, Holm-adjusted together (`shiftlens.evidence.Finding.to_json` each)."""
        return self.data["finding"]

    def extended(self: R, **fields: Any) -> R:
        """The same result with more top-level keys (e.g. where its inputs came from)."""
        return replace(self, data={**self.data, **fields})

    def write_json(self, path: str | Path) -> Path:
        """Write `to_json()` to ``path`` atomically."""
        atomic_write_json(Path(path), self.to_json())
        return Path(path)

    def save(self, out: str | Path) -> list[Path]:
        """Write everything under ``out``: the JSON (`JSON_FILE`), tables and figures; return the paths."""
        return [self.write_json(Path(out) / self.JSON_FILE), *self.save_files(Path(out))]

    def save_files(self, out: Path) -> list[Path]:
        """The tables and figures beside the JSON (each analysis writes its own)."""
        raise NotImplementedError
