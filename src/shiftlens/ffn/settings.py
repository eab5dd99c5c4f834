"""`FfnSettings`: every option of an FFN run, each default declared once."""

from __future__ import annotations

from dataclasses import dataclass

from shiftlens.config import check_choices, setting
from shiftlens.errors import ShiftlensError


@dataclass(frozen=True)
class FfnSettings:
    """How `shiftlens.ffn.pipeline.explain_ffn` reads FFN components; ``layers`` only picks units."""

    components: int | None = setting(
        None, "principal components R kept per layer (default: the paper's 300/4096 of the hidden size)"
    )
    top_k: int = setting(50, "words stored per component", flag="--words-per-component", old_flags=("--top-k",))
    layers: tuple[int, ...] | None = setting(
        None, "layers to explain, e.g. 0,3,10-12 (default: all); more layers extend a run", identity=False
    )
    vocab_top: int | None = setting(None, "keep only the N most frequent words", metavar="N")

    def __post_init__(self) -> None:
        check_choices(self)
        if self.top_k < 1:
            raise ShiftlensError("--words-per-component must be at least 1")
        if self.layers is not None:
            object.__setattr__(self, "layers", tuple(self.layers))
