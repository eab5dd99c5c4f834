"""`AttributionSettings`: every option of an attribution run, each default declared once."""

from __future__ import annotations

from dataclasses import dataclass

from shiftlens.attribution.plan import DEFAULT_MEMORY_BUDGET, MODES, OBJECTIVES
from shiftlens.config import check_choices, setting
from shiftlens.density import DensityParams
from shiftlens.errors import ShiftlensError

DEFAULT_MAX_NEW_TOKENS = 300  # the paper's generation length


@dataclass(frozen=True)
class AttributionSettings:
    """How `shiftlens.attribution.pipeline.attribute` explains responses; identity fields fix the stored matrices."""

    objective: str = setting(
        "prob", "what is differentiated: the response token's prob, logprob or logit", choices=OBJECTIVES
    )
    chat_template: str = setting("auto", "auto (the tokenizer's, if any), none, or a Jinja template file")
    max_new_tokens: int = setting(DEFAULT_MAX_NEW_TOKENS, "generation length limit", metavar="N")
    generate_responses: bool = setting(False, "generate responses even where the data has them", flag="--generate")
    responses_from: str | None = setting(
        None, "explain the responses stored in this attribution run (e.g. the tuned model's)", metavar="DIR"
    )
    ratings: str | dict[str, float] | None = setting(
        None, "ratings to join by id (AnnotatedDataset.tsv format)", identity=False, metavar="FILE"
    )
    limit: int | None = setting(None, "only the first N examples", identity=False, metavar="N")
    mode: str = setting(
        "auto",
        "forward (one JVP per prompt token), batched reverse or loop; auto picks the cheaper; same numbers",
        choices=MODES,
        identity=False,
    )
    chunk_size: int | None = setting(
        None, "response tokens per backward chunk (default: sized by memory)", identity=False
    )
    memory_budget: float = setting(
        DEFAULT_MEMORY_BUDGET,
        "size chunks so the estimated peak stays within X x (weights + one forward's activations, at least 256 MiB)",
        identity=False,
        metavar="X",
    )
    density: DensityParams = setting(
        DensityParams(), "post-processing of the summary's instruction score (L, b, p)", identity=False
    )

    def __post_init__(self) -> None:
        check_choices(self)
        for name in ("responses_from", "ratings"):  # paths are recorded as text
            value = getattr(self, name)
            if value is not None and not isinstance(value, (str, dict)):
                object.__setattr__(self, name, str(value))
        if not self.memory_budget > 0:
            raise ShiftlensError(f"--memory-budget must be positive, got {self.memory_budget}")
        if self.max_new_tokens < 1:
            raise ShiftlensError(f"--max-new-tokens must be at least 1, got {self.max_new_tokens}")
        if self.limit is not None and self.limit < 1:
            raise ShiftlensError(f"--limit must be at least 1, got {self.limit}")
        if self.chunk_size is not None and self.chunk_size < 1:
            raise ShiftlensError(f"--chunk-size must be at least 1, got {self.chunk_size}")
