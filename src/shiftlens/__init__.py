"""shiftlens: what instruction tuning changed inside a language model.

Three explanation methods after Wu et al. (NAACL 2024) — input→output attribution, self-attention
head word pairs and feed-forward concepts — and the statistics that compare a base and a tuned model.
"""

__version__ = "0.1.0"

# Public functions imported on first use, so `import shiftlens` stays light: name -> defining module.
_LAZY = {"attribute": "shiftlens.attribution.pipeline"}


def __getattr__(name: str):
    """Import a public function of `_LAZY` on first access."""
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'shiftlens' has no attribute {name!r}")
