"""The report's top: the findings of every method (adjusted together) and what departs from the paper.

Built from the plain results dict alone; every text is escaped here.
"""

from __future__ import annotations

from html import escape
from typing import Any

from shiftlens.evidence import PROTOCOLS
from shiftlens.report.findings import SECTIONS, TITLES, by_method, headline_findings, is_heuristic, verdict

SHOWN_PER_METHOD = 4


def summary_html(results: dict[str, Any]) -> str:
    """Per method: its findings as verdicts (at most `SHOWN_PER_METHOD`, the rest counted), or "not run"."""
    grouped = by_method(headline_findings(results))
    n_total = sum(len(items) for items in grouped.values())
    items = []
    for key, method in SECTIONS.items():
        title = escape(TITLES[method])
        found = grouped.get(method, [])
        if not results.get(key):
            items.append(f'<li class="sl-finding sl-missing"><b>{title}</b>: not run.</li>')
            continue
        if not found:
            items.append(f'<li class="sl-finding sl-missing"><b>{title}</b>: the analysis states no finding.</li>')
            continue
        lines = []
        for finding in found[:SHOWN_PER_METHOD]:
            cls, text = verdict(finding)
            lines.append(f'<li class="{cls}">{escape(text)}</li>')
        if len(found) > SHOWN_PER_METHOD:
            lines.append(f"<li>… {len(found) - SHOWN_PER_METHOD} more in the section below.</li>")
        note = ""
        if method == "ffn" and is_heuristic(results.get("ffn") or {}):
            note = " These are heuristic labels from a lexical annotator, not human or LLM annotations."
        n_shown = sum(f.significant for f in found)
        items.append(
            f'<li class="sl-finding"><b>{title}</b>: {n_shown} of {len(found)} claims shown.{escape(note)} '
            f'<a href="#sl-{key}">details</a><ul>{"".join(lines)}</ul></li>'
        )
    intro = (
        f"<p>Every claim below was tested under its analysis's protocol; the p-values are Holm-adjusted together "
        f"over all {n_total} claims of this report. A claim is <b>shown</b> when its adjusted p is below 0.05.</p>"
    )
    return intro + f'<ul class="sl-findings">{"".join(items)}</ul>' + departures_html(results)


def departures(results: dict[str, Any]) -> list[str]:
    """What this comparison does differently from the paper, in plain sentences."""
    lines = []
    protocols = {str((results.get(key) or {}).get("protocol")) for key in SECTIONS if results.get(key)}
    protocols.discard("None")
    for protocol in sorted(protocols):
        meaning = PROTOCOLS.get(protocol, "unknown")
        lines.append(f"Protocol {protocol}: {meaning} (docs/protocols.md lists every difference).")
    heads = results.get("heads") or {}
    cooccurrence = heads.get("cooccurrence") or {}
    if cooccurrence:
        covered = cooccurrence.get("n_with_vector")
        total = None if covered is None else covered + cooccurrence.get("n_without_vector", 0)
        coverage = "" if total is None else f", covering {covered} of {total} words of the word list"
        lines.append(f"Heads word-pair filter: co-occurrence backend {cooccurrence.get('spec')}{coverage}.")
    ffn = results.get("ffn") or {}
    if ffn.get("components"):
        lines.append(
            f"FFN: R = {ffn['components']} principal components per layer of hidden size {ffn.get('hidden', '?')} "
            f"(the paper: 300 of 4,096; rule: {ffn.get('components_rule', 'not recorded')})."
        )
    if ffn:
        annotations = ffn.get("annotations") or {}
        names = sorted({str(a.get("annotator")) for a in annotations.values() if isinstance(a, dict)})
        if names:
            kind = "heuristic, not an LLM" if is_heuristic(ffn) else "as configured"
            lines.append(f"FFN concept labels: {', '.join(names)} annotator ({kind}); the paper used an LLM.")
        else:
            lines.append("FFN concepts were not annotated: only the rotation of the components is analysed.")
    return lines


def departures_html(results: dict[str, Any]) -> str:
    """The "departures from the paper" box (empty when nothing ran)."""
    lines = departures(results)
    if not lines:
        return ""
    body = "".join(f"<li>{escape(line)}</li>" for line in lines)
    return f'<div class="sl-departures"><h3>Departures from the paper</h3><ul>{body}</ul></div>'
