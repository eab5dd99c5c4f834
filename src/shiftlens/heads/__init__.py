"""Attention heads explained as (query, key) word pairs from W_q and W_k, and the base-vs-tuned analysis."""

from shiftlens.heads.analysis import analyze_heads
from shiftlens.heads.pipeline import explain_heads

__all__ = ["analyze_heads", "explain_heads"]
