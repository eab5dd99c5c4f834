"""`AnnotationSettings`: every option of an annotation run, each default declared once."""

from __future__ import annotations

from dataclasses import dataclass

from shiftlens.config import check_choices, setting
from shiftlens.errors import ShiftlensError
from shiftlens.evidence import DEFAULT_PROTOCOL, PROTOCOLS
from shiftlens.ffn.annotators import KINDS


@dataclass(frozen=True)
class AnnotationSettings:
    """How `shiftlens.ffn.annotate.annotate_ffn` labels components (the endpoint's options: `EndpointSettings`)."""

    annotator: str = setting(
        "llm", "who labels: an OpenAI-compatible LLM endpoint or the offline lexical heuristic", choices=KINDS
    )
    protocol: str = setting(
        DEFAULT_PROTOCOL,
        "paper: the authors' temperatures (concept 1.0, tasks and level 0); sound: one temperature for all",
        choices=tuple(PROTOCOLS),
    )
    runs: int = setting(5, "repeated annotation runs (lexical: always 1)")
    n_words: int = setting(15, "top words shown per component", flag="--words")
    components: int | None = setting(None, "label only the first N components of each layer", metavar="N")
    concurrency: int = setting(8, "requests in flight at most", identity=False)

    def __post_init__(self) -> None:
        check_choices(self)
        if self.runs < 1 or self.concurrency < 1 or self.n_words < 1:
            raise ShiftlensError(
                "--annotation-runs, --annotation-concurrency and --annotation-words must be at least 1"
            )
