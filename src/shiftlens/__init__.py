"""shiftlens: what instruction tuning changed inside a language model.

Three explanation methods after Wu et al. (NAACL 2024) — input→output attribution, self-attention
head word pairs and feed-forward concepts — and the statistics that compare a base and a tuned model.
The public API below is imported on first use, so `import shiftlens` stays light (no torch).
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

# Public name -> the module that defines it.
_LAZY = {
    "ModelSpec": "shiftlens.models",
    "load_model": "shiftlens.models",
    "AttributionSettings": "shiftlens.attribution.settings",
    "attribute": "shiftlens.attribution.pipeline",
    "HeadsSettings": "shiftlens.heads.settings",
    "explain_heads": "shiftlens.heads.pipeline",
    "FfnSettings": "shiftlens.ffn.settings",
    "explain_ffn": "shiftlens.ffn.pipeline",
    "AnnotationSettings": "shiftlens.ffn.annotation_settings",
    "EndpointSettings": "shiftlens.ffn.annotators",
    "annotate": "shiftlens.ffn.annotate",
    "CompareSettings": "shiftlens.compare.settings",
    "compare": "shiftlens.compare",  # the package itself, callable as the function (see its docstring)
    "analyze_instructions": "shiftlens.analysis.instructions",
    "HeadsAnalysisSettings": "shiftlens.analysis.heads",
    "analyze_heads": "shiftlens.analysis.heads",
    "analyze_ffn": "shiftlens.analysis.ffn",
}
__all__ = ["__version__", *_LAZY]


def __getattr__(name: str) -> Any:
    """Import a public name of `_LAZY` on first access."""
    if name in _LAZY:
        module = importlib.import_module(_LAZY[name])
        return module if name == "compare" else getattr(module, name)
    raise AttributeError(f"module 'shiftlens' has no attribute {name!r}")


def __dir__() -> list[str]:
    """The public API, for tab completion."""
    return sorted(__all__)
