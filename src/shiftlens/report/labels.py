"""The one mapping from the analyses' raw result keys to the words the report shows (table headers, axes, legends).

A key without an entry is still shown in words: underscores become spaces, ``p_value`` becomes "p-value"
and a ``_deg`` suffix "(°)", so no raw key reaches a reader even when an analysis adds a field.
"""

from __future__ import annotations

import re

LABELS = {
    "p_value": "p-value",
    "paired_p_value": "paired p-value",
    "p_adjusted": "adjusted p",
    "auc": "AUC",
    "effect_size": "effect size",
    "difference": "difference (tuned − base)",
    "significant": "significant (adjusted p < 0.05)",
    "n_paired": "paired examples",
    "n_pairs": "word pairs",
    "n_heads": "heads",
    "n_words": "words",
    "n_usable": "usable",
    "n_components": "components",
    "mean_principal_angle_deg": "mean principal angle (°)",
    "matched_abs_cos_mean": "mean |cos| of matched components",
    "word_overlap_mean": "mean top-word overlap",
    "word_overlap": "top-word overlap",
    "abs_cos": "|cos|",
    "base_component": "base component",
    "tuned_component": "tuned component",
    "base_words": "base top words",
    "tuned_words": "tuned top words",
    "weight_hash": "weight hash",
    "model_type": "model type",
    "gguf_file": "GGUF file",
    "trust_remote_code": "trusts remote code",
}


def label(key: object) -> str:
    """The reader's words for a raw result key (`LABELS`, else the key with its underscores spelled out)."""
    text = str(key)
    if text in LABELS:
        return LABELS[text]
    text = re.sub(r"_deg$", " (°)", text)
    text = re.sub(r"(^|_)p_value", r"\1p-value", text)
    return text.replace("_", " ")
