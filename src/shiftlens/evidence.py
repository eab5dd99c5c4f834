"""Rules of evidence shared by every analysis: the protocols, the degenerate-data guard, and one finding record.

A comparison is *testable* only when each side has at least `MIN_N` values and neither side is constant;
otherwise it reports "not testable" with the reason instead of a p-value. Headlines of a report are
corrected together for multiplicity (Holm) by `adjust`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from typing import Any

import numpy as np

from shiftlens.errors import ShiftlensError

MIN_N = 5
ALPHA = 0.05
PROTOCOLS = {
    "sound": "our default: degenerate-data guards, permutation tests on the right unit, nulls beside every shift",
    "paper": "the authors' released analysis code, followed exactly (see docs/protocols.md)",
}
DEFAULT_PROTOCOL = "sound"
MIN_RESPONSE_TOKENS = 5  # the paper's: shorter responses leave the instruction tables


def check_protocol(protocol: str) -> str:
    """The protocol name, or a one-line error listing the known ones."""
    if protocol not in PROTOCOLS:
        raise ShiftlensError(f"unknown protocol {protocol!r}: choose one of {', '.join(PROTOCOLS)}")
    return protocol


def untestable_reason(*samples: Sequence[float] | np.ndarray, min_n: int = MIN_N) -> str | None:
    """Why these samples cannot be compared ("side 2: n = 3 < 5", "side 1: zero variance"), or None if they can."""
    reasons = []
    for side, values in enumerate(samples, 1):
        x = np.asarray(values, dtype=np.float64).ravel()
        x = x[np.isfinite(x)]
        if x.size < min_n:
            reasons.append(f"side {side}: n = {x.size} < {min_n}")
        elif float(np.ptp(x)) == 0.0:
            reasons.append(f"side {side}: zero variance (all {x[0]:.4g})")
    return "; ".join(reasons) or None


@dataclass(frozen=True)
class Finding:
    """One claim an analysis makes, with the evidence behind it; `p_adjusted` is set by `adjust`."""

    method: str
    claim: str
    testable: bool
    reason: str | None = None
    p_value: float | None = None
    p_adjusted: float | None = None
    significant: bool = False
    effect_size: float | None = None
    ci: tuple[float, float] | None = None

    @classmethod
    def untestable(cls, method: str, claim: str, reason: str) -> Finding:
        """A claim that no test could address, with the reason."""
        return cls(method, claim, testable=False, reason=reason)

    def to_json(self) -> dict[str, Any]:
        """Plain JSON values (NaN → None, the interval as a list)."""
        data = asdict(self)
        for key in ("p_value", "p_adjusted", "effect_size"):
            value = data[key]
            data[key] = None if value is None or not math.isfinite(value) else float(value)
        data["ci"] = None if self.ci is None else [float(v) for v in self.ci]
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Finding:
        """The inverse of `to_json`."""
        ci = data.get("ci")
        return cls(**{**data, "ci": None if ci is None else tuple(ci)})


def holm(p_values: Sequence[float]) -> list[float]:
    """Holm–Bonferroni adjusted p-values (step-down, monotone, capped at 1), in the input order."""
    p = np.asarray(p_values, dtype=np.float64)
    order = np.argsort(p, kind="stable")
    adjusted = np.empty_like(p)
    running = 0.0
    for rank, index in enumerate(order):
        running = max(running, min(1.0, (p.size - rank) * p[index]))
        adjusted[index] = running
    return adjusted.tolist()


def adjust(findings: Sequence[Finding], alpha: float = ALPHA) -> list[Finding]:
    """Every testable finding with its Holm-adjusted p over all testable ones, significant when it is < alpha."""
    testable = [i for i, f in enumerate(findings) if f.testable and f.p_value is not None]
    adjusted = holm([findings[i].p_value for i in testable])  # type: ignore[misc]
    out = list(findings)
    for i, p in zip(testable, adjusted, strict=True):
        out[i] = replace(findings[i], p_adjusted=p, significant=p < alpha)
    return out
