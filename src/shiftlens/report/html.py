"""Renders the results of the three analyses as ONE self-contained HTML file (no network, no CDN).

CSS and JS are read from ``assets/`` and inlined, charts are inline SVG, and per-example data sits in a
``<script type="application/json">`` escaped so no token text can close it. A Content-Security-Policy
meta tag forbids every network fetch, so the page works (and is safe) offline.
"""

from __future__ import annotations

import json
import uuid
from datetime import datetime, timezone
from functools import cache
from html import escape
from importlib import resources
from pathlib import Path
from typing import Any

from shiftlens.errors import ShiftlensError
from shiftlens.report import sections
from shiftlens.report.diff import diff_html
from shiftlens.report.notes import notes_html
from shiftlens.report.summary import summary_html
from shiftlens.storage import atomic_write_text

CSP = (
    "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; img-src data:; "
    "font-src data:; base-uri 'none'; form-action 'none'"
)
_JSON_ESCAPES = (("&", "\\u0026"), ("<", "\\u003c"), (">", "\\u003e"), ("\u2028", "\\u2028"), ("\u2029", "\\u2029"))


SCRIPTS = ("common.js", "heatmap.js", "report.js")  # inlined in this order: each uses the ones before


@cache
def asset(name: str) -> str:
    """The text of a packaged asset (report.css and the `SCRIPTS`)."""
    return resources.files("shiftlens.report").joinpath("assets", name).read_text(encoding="utf-8")


def scripts() -> str:
    """Every script of the report, in order, as one inline text."""
    return "\n".join(asset(name) for name in SCRIPTS)


def json_for_script(data: Any) -> str:
    """JSON safe to embed in a ``<script>`` element: ``<``, ``>``, ``&`` and line separators escaped."""
    try:
        text = json.dumps(data, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    except ValueError as exc:
        raise ShiftlensError(f"report examples hold a non-finite number (NaN or inf): {exc}") from exc
    for char, escaped in _JSON_ESCAPES:  # str.replace is far faster than translate on tens of MB
        text = text.replace(char, escaped)
    return text


def explorer_html(examples: dict[str, Any], *, single: bool = False) -> str:
    """The example explorer's mount point: an element holding its data; the JS builds the UI in it."""
    data = dict(examples, single=single)
    return (
        '<div class="sl-explorer-root">'
        f'<script type="application/json" class="sl-data">{json_for_script(data)}</script></div>'
    )


def examples_html(examples: dict[str, Any] | None) -> str:
    """The examples section body: the explorer, or 'not run' when no attribution examples were given."""
    if not examples or not examples.get("examples"):
        return sections.not_run("The per-example attribution view")
    note = (
        '<p class="sl-note">Heatmaps: each response token (column) is scaled to levels 0–'
        f"{int(examples.get('levels', 10))} of its largest prompt attribution (negative values at 0), as in the "
        "paper, shown before the density threshold. Rows and columns are labelled with their tokens (an orange mark "
        "on instruction rows); the grid scrolls with its labels in view, and the cell-size menu zooms out. Hover a "
        "cell for its value and tokens.</p>"
    )
    return note + explorer_html(examples)


def body_html(results: dict[str, Any]) -> str:
    """Everything inside the report's root element: title, navigation, all sections."""
    if not isinstance(results, dict):
        raise ShiftlensError(f"report results must be a dict of sections, got {type(results).__name__}")
    meta = results.get("meta") or {}
    models = meta.get("models") or []
    names = [m.get("name", "?") for m in (models.values() if isinstance(models, dict) else models)]
    subtitle = " vs ".join(str(n) for n in names) or "models not recorded"
    nav = "".join(
        f'<a href="#sl-{k}">{escape(t.split("·")[-1].strip())}</a>' for k, t in sections.SECTION_TITLES.items()
    )
    generated = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    return (
        "<header><h1>shiftlens: what instruction tuning changed</h1>"
        f'<p class="sl-sub">{escape(subtitle)} · <span class="sl-generated">generated {generated}</span></p>'
        f"<nav>{nav}</nav></header>"
        + sections.section("summary", summary_html(results))
        + sections.section("notes", notes_html(results))
        + sections.section("instructions", sections.instructions_html(results.get("instructions")))
        + sections.section("heads", sections.heads_html(results.get("heads")))
        + sections.section("ffn", sections.ffn_html(results.get("ffn")))
        + sections.section("diff", diff_html(results.get("diff")))
        + sections.section("examples", examples_html(results.get("examples")))
        + sections.section("meta", sections.meta_html(meta))
    )


def page_html(body: str, title: str = "shiftlens report") -> str:
    """A complete standalone HTML page around a body fragment, with the CSS and JS inlined."""
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f'<meta http-equiv="Content-Security-Policy" content="{CSP}">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{escape(title)}</title><style>{asset('report.css')}</style></head>"
        f'<body><div class="sl">{body}</div><script>{scripts()}\nShiftlensReport.mountAll();</script>'
        "</body></html>\n"
    )


def snippet_html(body: str) -> str:
    """A self-contained fragment (styles, script, data) for a notebook cell; mounts only its own explorers."""
    root = f"sl-{uuid.uuid4().hex}"
    return (
        f'<div class="sl" id="{root}"><style>{asset("report.css")}</style>{body}'
        f"<script>{scripts()}\n"
        f'document.getElementById("{root}").querySelectorAll(".sl-explorer-root")'
        ".forEach(ShiftlensReport.mount);</script></div>"
    )


def render_report(results: dict[str, Any], out_path: str | Path) -> Path:
    """Write the whole report as one self-contained HTML file (atomically) and return its path.

    ``results`` holds any of ``meta``, ``instructions``, ``heads``, ``ffn``, ``examples`` (see the
    README's Report section); a missing one shows as "not run".
    """
    out = Path(out_path)
    if out.is_dir():
        out = out / "report.html"
    out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out, page_html(body_html(results)))
    return out
