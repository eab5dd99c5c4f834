"""`HeadsAnalysisSettings`: the choices of `shiftlens.analysis.heads`, in a module of constants only, so that
`shiftlens analyze heads` shows their defaults without importing scipy or pyarrow."""

from __future__ import annotations

from dataclasses import dataclass

from shiftlens.evidence import DEFAULT_PROTOCOL, check_protocol
from shiftlens.heads.controls import CONTROLS_PER_WORD
from shiftlens.heads.settings import HeadsAnalysisError
from shiftlens.heads.statistics import BOOTSTRAP_RESAMPLES, PERMUTATIONS

MIN_HEADS = 5


@dataclass(frozen=True)
class HeadsAnalysisSettings:
    """The analysis choices; ``n_groups``, ``min_heads`` and ``controls_per_word`` apply to ``sound`` only."""

    protocol: str = DEFAULT_PROTOCOL
    n_groups: int | None = None
    min_heads: int = MIN_HEADS
    controls_per_word: int = CONTROLS_PER_WORD
    permutations: int = PERMUTATIONS
    resamples: int = BOOTSTRAP_RESAMPLES
    seed: int = 0

    def checked(self) -> HeadsAnalysisSettings:
        """These settings, or a one-line error for a value the protocol cannot use."""
        check_protocol(self.protocol)
        if self.protocol == "paper" and self.n_groups is not None:
            raise HeadsAnalysisError("the paper protocol groups layers as layer // 8; --groups is for --protocol sound")
        for name in ("min_heads", "controls_per_word", "permutations", "resamples"):
            if getattr(self, name) < 1:
                raise HeadsAnalysisError(f"{name.replace('_', ' ')} must be at least 1")
        return self
