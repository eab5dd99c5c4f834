"""What a comparison runs with: the two models and every method's settings (recorded, checked on resume)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from shiftlens.errors import ShiftlensError
from shiftlens.evidence import DEFAULT_PROTOCOL, check_protocol
from shiftlens.ffn.annotators import KINDS as ANNOTATORS
from shiftlens.ffn.annotators import EndpointSettings
from shiftlens.models import ModelSpec

RESPONSES = ("tuned", "each", "data")
METHODS = ("attribution", "heads", "ffn")
__all__ = ["CompareSettings", "ModelSpec"]


@dataclass(frozen=True)
class CompareSettings:
    """Settings of every step of `compare`; the defaults are those of the single commands (paper's)."""

    responses: str = "tuned"
    methods: tuple[str, ...] = METHODS
    dtype: str = "float32"
    device: str = "cpu"
    trust_remote_code: bool = False
    max_new_tokens: int = 300
    limit: int | None = None
    ratings: str | None = None
    cooccurrence: str = "ppmi:wordnet"
    heads_top_k: int = 100
    layers: tuple[int, ...] | None = None
    components: int | None = None  # FFN R: None = sized to the hidden size (shiftlens.ffn.sizing)
    ffn_top_k: int = 50
    vocab_top: int | None = None
    annotator: str | None = "lexical"
    annotation_runs: int = 5
    endpoint: EndpointSettings = field(default_factory=EndpointSettings)
    instruction_verbs: tuple[str, ...] | None = None
    allow_different_tokenizers: bool = False
    protocol: str = DEFAULT_PROTOCOL  # analysis protocol: "sound" (default) or "paper" (shiftlens.evidence.PROTOCOLS)
    null_draws: int = 20  # seeded base + tuning-sized-noise draws behind the heads and FFN null bands; 0 = none

    def __post_init__(self) -> None:
        check_protocol(self.protocol)
        if self.null_draws < 0:
            raise ShiftlensError(f"--null-draws must be 0 (no null band) or more, got {self.null_draws}")
        if self.responses not in RESPONSES:
            raise ShiftlensError(f"--responses must be one of {', '.join(RESPONSES)}, got {self.responses!r}")
        unknown = [m for m in self.methods if m not in METHODS]
        if unknown or not self.methods:
            raise ShiftlensError(f"methods must be among {', '.join(METHODS)}, got {', '.join(self.methods)}")
        if self.annotator is not None and self.annotator not in ANNOTATORS:
            raise ShiftlensError(f"--annotator must be one of {', '.join(ANNOTATORS)} or none")
        if self.annotator in ("llm", "openai") and not (self.endpoint.endpoint and self.endpoint.model):
            raise ShiftlensError(f"--annotator {self.annotator} needs --endpoint and --model (or --annotator lexical)")
        if self.ratings is not None and not Path(self.ratings).is_file():
            raise ShiftlensError(f"ratings file {self.ratings} does not exist")

    def record(self) -> dict[str, Any]:
        """The JSON-safe settings for the manifest; the endpoint's URL and model only (never a key)."""
        out = asdict(self)
        out["endpoint"] = {"url": self.endpoint.endpoint, "model": self.endpoint.model}
        return out
