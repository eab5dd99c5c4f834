"""The report's "run notes": failed and excluded examples and the tokenizer check, shown in the open.

What went wrong or was left out changes how every table below reads, so it is a visible section near
the top instead of a field inside a collapsed JSON block. Built from the plain results dict; all text escaped.
"""

from __future__ import annotations

from html import escape
from typing import Any

SHOWN_IDS = 20


def _ids(ids: list[Any]) -> str:
    """Up to `SHOWN_IDS` example ids, the rest counted."""
    shown = ", ".join(str(i) for i in ids[:SHOWN_IDS])
    return shown + (f" … and {len(ids) - SHOWN_IDS} more" if len(ids) > SHOWN_IDS else "")


def tokenizer_note(meta: dict[str, Any]) -> str:
    """Whether base and tuned share a tokenizer; a difference is a warning (per-token views not comparable)."""
    verdict = meta.get("tokenizers")
    if verdict is None:
        return ""
    if str(verdict) == "identical":
        return "<p>Tokenizers: base and tuned tokenize every text identically.</p>"
    return f'<p class="sl-warning"><b>Tokenizers differ.</b> {escape(str(verdict))}</p>'


def failure_items(instructions: dict[str, Any]) -> list[str]:
    """One line per model with failed examples (from the attribution runs) and per kind of exclusion."""
    lines = []
    for role, run in (instructions.get("runs") or {}).items():
        failed = list((run or {}).get("failed") or [])
        if failed:
            where = f" (reasons in {run['path']}/summary.csv)" if run.get("path") else ""
            lines.append(f"{role} model: {len(failed)} examples failed and are left out{where}: {_ids(failed)}")
    excluded = instructions.get("excluded") or {}
    for role, ids in (excluded.get("short_response") or {}).items():
        if ids:
            limit = excluded.get("min_response_tokens", "?")
            lines.append(f"{role} model: {len(ids)} responses shorter than {limit} tokens are excluded: {_ids(ids)}")
    unrated = list(excluded.get("unrated") or [])
    if unrated:
        lines.append(f"{len(unrated)} examples have no rating and are not in Table 1: {_ids(unrated)}")
    return lines


def notes_html(results: dict[str, Any]) -> str:
    """The run-notes section body: failures and exclusions as a list, then the tokenizer check."""
    lines = failure_items(results.get("instructions") or {})
    if lines:
        items = "".join(f"<li>{escape(line)}</li>" for line in lines)
        failures = f'<div class="sl-warning"><b>Failed or excluded examples</b><ul>{items}</ul></div>'
    elif results.get("instructions"):
        failures = "<p>No example failed or was excluded.</p>"
    else:
        failures = ""
    body = failures + tokenizer_note(results.get("meta") or {})
    return body or '<p class="sl-not-run">No run notes: the results record no failures and no tokenizer check.</p>'
