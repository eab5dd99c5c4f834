"""What a comparison runs with: its own options and every method's settings (recorded, checked on resume).

`CompareSettings` composes `AttributionSettings`, `HeadsSettings`, `FfnSettings`, `AnnotationSettings`
and the annotator's `EndpointSettings`; the CLI prefixes their flags (``--heads-candidates``, the endpoint's
``--annotator-*``). Options that several steps share are declared here once and override the methods' own:
``layers`` (heads and FFN), ``annotator`` and ``protocol`` (the annotation). The models (and how to load
them) are `ModelSpec`s.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from shiftlens.attribution.settings import AttributionSettings
from shiftlens.config import check_choices, setting
from shiftlens.errors import ShiftlensError
from shiftlens.evidence import DEFAULT_PROTOCOL, MIN_RESPONSE_TOKENS, PROTOCOLS
from shiftlens.ffn.annotation_settings import AnnotationSettings
from shiftlens.ffn.annotators import KINDS as ANNOTATORS
from shiftlens.ffn.annotators import EndpointSettings, require_endpoint
from shiftlens.ffn.settings import FfnSettings
from shiftlens.heads.settings import HeadsSettings
from shiftlens.models import ModelSpec

RESPONSES = ("tuned", "each", "data")
METHODS = ("attribution", "heads", "ffn")
COMPARE_SETS = ("chat_template", "responses_from", "generate_responses")  # attribution's, chosen per model
__all__ = ["CompareSettings", "ModelSpec"]


@dataclass(frozen=True)
class CompareSettings:
    """Settings of every step of `compare`; the defaults are those of the single commands (paper's)."""

    responses: str = setting(
        "tuned",
        "tuned: both models explain the tuned model's generation; each: every model its own; data: the data's",
        choices=RESPONSES,
    )
    methods: tuple[str, ...] = setting(METHODS, "methods to run", choices=METHODS)
    layers: tuple[int, ...] | None = setting(None, "layers for heads and FFN, e.g. 0,3,10-12 (none: all)")
    annotator: str | None = setting(
        "lexical", "FFN concept labels: offline lexical heuristic, an OpenAI-compatible endpoint, or none",
        choices=ANNOTATORS,
    )  # fmt: skip
    protocol: str = setting(
        DEFAULT_PROTOCOL,
        "analysis protocol: " + "; ".join(f"{name}: {meaning}" for name, meaning in PROTOCOLS.items()),
        choices=tuple(PROTOCOLS),
    )
    min_response_tokens: int = setting(
        MIN_RESPONSE_TOKENS, "responses shorter than this many tokens leave the instruction tables (the paper's 5)"
    )
    null_draws: int = setting(
        20, "seeded draws of base + noise of the tuning's size behind the heads and FFN null bands (0: none)"
    )
    diff: bool = setting(
        True,
        "the diff step: weight deltas per layer, module and head, and per-token divergence on the same responses",
    )
    allow_different_tokenizers: bool = setting(
        False, "compare models whose tokenizers differ (per-token views are then not comparable)"
    )
    instruction_verbs: tuple[str, ...] | None = setting(None, "instruction verbs for Table 3 (none: the built-in)")
    attribution: AttributionSettings = setting(AttributionSettings(), "attribution", prefix="attribution")
    heads: HeadsSettings = setting(HeadsSettings(), "attention heads", prefix="heads")
    ffn: FfnSettings = setting(FfnSettings(), "FFN components", prefix="ffn")
    annotation: AnnotationSettings = setting(AnnotationSettings(), "FFN concept labels", prefix="annotation")
    endpoint: EndpointSettings = setting(EndpointSettings(), "the LLM annotator's endpoint", prefix="annotator")

    def __post_init__(self) -> None:
        check_choices(self)
        if self.min_response_tokens < 1:
            raise ShiftlensError(f"--min-response-tokens must be at least 1, got {self.min_response_tokens}")
        if self.null_draws < 0:
            raise ShiftlensError(f"--null-draws must be 0 (no null band) or more, got {self.null_draws}")
        if not self.methods:
            raise ShiftlensError(f"--methods must be among {', '.join(METHODS)}, got none")
        require_endpoint(self.annotator, self.endpoint)
        ratings = self.attribution.ratings
        if isinstance(ratings, str) and not Path(ratings).is_file():
            raise ShiftlensError(f"ratings file {ratings} does not exist")
        default = AttributionSettings()
        given = [name for name in COMPARE_SETS if getattr(self.attribution, name) != getattr(default, name)]
        if given:
            raise ShiftlensError(
                f"compare sets the attribution's {', '.join(given)} itself (--responses picks whose responses)"
            )
        annotator = self.annotator or self.annotation.annotator
        object.__setattr__(self, "annotation", replace(self.annotation, annotator=annotator, protocol=self.protocol))
        if self.layers is not None:  # shared by heads and FFN: overrides their own
            object.__setattr__(self, "heads", replace(self.heads, layers=self.layers))
            object.__setattr__(self, "ffn", replace(self.ffn, layers=self.layers))

    def record(self) -> dict[str, Any]:
        """The JSON-safe settings for the manifest; the endpoint's URL and model only (never a key)."""
        out = asdict(self)
        out["endpoint"] = {"url": self.endpoint.endpoint, "model": self.endpoint.model}
        return out
