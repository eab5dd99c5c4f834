"""`HeadsSettings`: every option of a heads run, each default declared once."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from shiftlens.config import check_choices, setting, settings_fields
from shiftlens.errors import ShiftlensError


class HeadsError(ShiftlensError, ValueError):
    """Bad settings for a head explanation (layers out of range, bad top-k, ...)."""


class HeadsAnalysisError(ShiftlensError, ValueError):
    """Settings of a heads comparison that the protocol does not allow (layer groups, word lists, ...)."""


class CooccurrenceError(ShiftlensError, ValueError):
    """A co-occurrence backend spec or its file that cannot be used."""


def parse_spec(spec: str) -> tuple[str, str]:
    """Split a co-occurrence backend spec (`shiftlens.heads.cooccurrence`) into (kind, argument), refusing
    unknown kinds."""
    kind, _, argument = spec.partition(":")
    if not (spec == "none" or (kind in ("glove", "st", "ppmi") and argument)):
        raise CooccurrenceError(
            f"unknown co-occurrence backend {spec!r}; use glove:PATH, st:NAME_OR_PATH, ppmi:CORPUS "
            "(ppmi:wordnet for the WordNet glosses) or none"
        )
    return kind, argument


@dataclass(frozen=True)
class HeadsSettings:
    """How `shiftlens.heads.pipeline.explain_heads` reads heads as word pairs; ``layers`` only picks units."""

    top_k: int = setting(100, "candidate words per dimension and side", flag="--candidates", old_flags=("--top-k",))
    cooccurrence: str = setting(
        "ppmi:wordnet", "glove:PATH, st:NAME_OR_PATH, ppmi:CORPUS (ppmi:wordnet = WordNet glosses) or none"
    )
    layers: tuple[int, ...] | None = setting(
        None, "layers to explain, e.g. 0,3,10-12 (default: all); more layers extend a run", identity=False
    )
    min_frequency: float | None = setting(None, "drop words of lower frequency")
    alphabetic: bool = setting(False, "keep only alphabetic words")
    top_n: int | None = setting(
        None, "keep only the N most frequent words", metavar="N", flag="--vocab-top", old_flags=("--top-n",)
    )
    reference_words: int = setting(3000, "most frequent words for thresholds")
    z: float = setting(1.96, "threshold = mean + z*std of reference similarity")
    max_pairs: int | None = setting(None, "keep at most N pairs per dimension (default: all)", metavar="N")

    @classmethod
    def from_params(cls, params: dict[str, Any]) -> HeadsSettings:
        """The settings a run's recorded identity holds (format 1 nested the word filters under ``filters``)."""
        known = {f.name for f in settings_fields(cls)}
        flat = {**params, **params.get("filters", {})}
        return cls(**{k: v for k, v in flat.items() if k in known})

    def __post_init__(self) -> None:
        check_choices(self)
        if self.top_k < 1 or (self.max_pairs is not None and self.max_pairs < 1) or self.reference_words < 1:
            raise HeadsError("--candidates, --max-pairs and --reference-words must be at least 1")
        parse_spec(self.cooccurrence)
        if self.layers is not None:
            object.__setattr__(self, "layers", tuple(self.layers))
