"""Attention heads explained as (query, key) word pairs from W_q and W_k (analysis: `shiftlens.analysis.heads`).

`explain_heads` is imported on first use, so that `shiftlens.heads.settings` loads without torch or scipy.
"""

from shiftlens.lazy import lazy_names

__all__ = ["explain_heads"]
__getattr__, __dir__ = lazy_names(__name__, {"explain_heads": "shiftlens.heads.pipeline"})
