"""The report's summary: every finding of the analyses, corrected together for multiplicity, in careful words.

Each analysis states its claims as `shiftlens.evidence.Finding` records (its ``finding`` list); the report
takes all of them as one family of headlines and adjusts their p-values together (Holm), so that neither
the best layer group nor the largest of six categories can manufacture a finding. A claim is "shown" only
when its adjusted p is below `ALPHA`; "not shown" otherwise; "not testable" with the reason when no test
was possible.
"""

from __future__ import annotations

import math
from typing import Any

from shiftlens.evidence import ALPHA, Finding, adjust
from shiftlens.report.svg import fmt_number

SECTIONS = {"instructions": "attribution", "heads": "heads", "ffn": "ffn", "diff": "diff"}  # results key → method
TITLES = {"attribution": "Instruction attribution", "heads": "Attention heads", "ffn": "Feed-forward concepts"}
TITLES["diff"] = "Where tuning acted"
LEXICAL_ANNOTATORS = {"lexical", "heuristic", "wordnet", "keyword"}


def fmt_p(p: float | None, name: str = "p") -> str:
    """A p-value as text ("p = 0.003", "p < 0.001", "p = –" when missing)."""
    if p is None or not math.isfinite(p):
        return f"{name} = –"
    return f"{name} < 0.001" if p < 0.001 else f"{name} = {p:.3g}"


def gather(results: dict[str, Any]) -> list[Finding]:
    """Every analysis's findings, in section order, Holm-adjusted across all of them."""
    found = []
    for key in SECTIONS:
        section = results.get(key) or {}
        found += [Finding.from_json(f) for f in section.get("finding") or []]
    return adjust(found)


def headline_findings(results: dict[str, Any]) -> list[Finding]:
    """The adjusted findings: ``results["findings"]`` when the comparison stored them, else gathered now."""
    stored = results.get("findings")
    return [Finding.from_json(f) for f in stored] if stored is not None else gather(results)


def verdict(finding: Finding) -> tuple[str, str]:
    """(CSS class, sentence) of one finding: shown, not shown, or not testable, with its numbers."""
    if not finding.testable:
        return "sl-untestable", f"Not testable: {finding.claim} ({finding.reason})."
    text = f"{finding.claim}: {fmt_p(finding.p_value)}, {fmt_p(finding.p_adjusted, 'adjusted p')}"
    if finding.effect_size is not None and math.isfinite(finding.effect_size):
        text += f", effect {fmt_number(finding.effect_size)}"
        if finding.ci is not None:
            text += f" (95% CI {fmt_number(finding.ci[0])} to {fmt_number(finding.ci[1])})"
    if finding.significant:
        return "sl-yes", f"Shown: {text}."
    return "sl-unclear", f"Not shown (adjusted p ≥ {ALPHA}): {text}."


def by_method(findings: list[Finding]) -> dict[str, list[Finding]]:
    """Findings per method, shown ones first, then by adjusted p, untestable last."""

    def order(f: Finding) -> tuple[int, float]:
        rank = 0 if f.significant else (1 if f.testable else 2)
        return rank, f.p_adjusted if f.p_adjusted is not None else math.inf

    grouped: dict[str, list[Finding]] = {method: [] for method in SECTIONS.values()}
    for finding in findings:
        grouped.setdefault(finding.method, []).append(finding)
    return {method: sorted(items, key=order) for method, items in grouped.items()}


def is_heuristic(section: dict[str, Any]) -> bool:
    """Whether the FFN concept labels came from the offline lexical heuristic rather than an LLM or people."""
    annotations = section.get("annotations") or {}
    return bool(annotations.get("heuristic")) or str(section.get("annotator", "")).lower() in LEXICAL_ANNOTATORS
