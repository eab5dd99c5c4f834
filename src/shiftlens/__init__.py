"""shiftlens: what instruction tuning changed inside a language model.

Three explanation methods after Wu et al. (NAACL 2024) — input→output attribution, self-attention
head word pairs and feed-forward concepts — and the statistics that compare a base and a tuned model.
"""

__version__ = "0.1.0"
