"""Attention heads explained as (query, key) word pairs from W_q and W_k (analysis: `shiftlens.analysis.heads`)."""

from shiftlens.heads.pipeline import explain_heads

__all__ = ["explain_heads"]
