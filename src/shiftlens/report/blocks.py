"""Escaped HTML building blocks of the report sections: cells, tables, charts by layer, findings, raw JSON."""

from __future__ import annotations

import json
from collections.abc import Sequence
from html import escape
from typing import Any

from shiftlens.evidence import ALPHA
from shiftlens.report.findings import fmt_p
from shiftlens.report.labels import label
from shiftlens.report.svg import bar_chart, fmt_number, line_chart
from shiftlens.stats import finite


class Html(str):
    """Markup built from escaped parts (e.g. a link): a table cell shows it as it is."""


def cell(value: Any) -> str:
    """One table cell's escaped text: numbers shortened, stats dicts as mean ± std (n); `Html` as it is."""
    if isinstance(value, Html):
        return str(value)
    if isinstance(value, bool) or value is None:
        return escape(str(value if value is not None else "–"))
    if isinstance(value, (int, float)):
        return escape(fmt_number(float(value)))
    if isinstance(value, dict) and "mean" in value:
        mean = value["mean"]
        text = fmt_number(float(mean)) if isinstance(mean, (int, float)) else "–"
        if isinstance(value.get("std"), (int, float)):
            text += f" ± {fmt_number(float(value['std']))}"
        if "n" in value:
            text += f" (n={value['n']})"
        return escape(text)
    if isinstance(value, (list, tuple)):
        return escape(", ".join(str(v) for v in value))
    return escape(str(value))


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]], p_columns: Sequence[int] = ()) -> str:
    """An HTML table, headers in the reader's words (`label`); ``p_columns`` cells are p-values (bold below `ALPHA`)."""
    head = "".join(f"<th>{escape(label(h))}</th>" for h in headers)
    body = []
    for row in rows:
        cells = []
        for i, value in enumerate(row):
            if i in p_columns and isinstance(value, (int, float)):
                mark = ' class="sl-sig"' if value < ALPHA else ""
                cells.append(f"<td{mark}>{escape(fmt_p(float(value)).removeprefix('p = '))}</td>")
            else:
                cells.append(f"<td>{cell(value)}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    return f'<table class="sl-table"><thead><tr>{head}</tr></thead><tbody>{"".join(body)}</tbody></table>'


def raw_json(title: str, value: Any) -> str:
    """A collapsed block with a value as escaped, indented JSON."""
    text = json.dumps(value, indent=1, default=str, ensure_ascii=False)
    return f"<details><summary>{escape(title)}</summary><pre>{escape(text)}</pre></details>"


def number(d: Any, key: str) -> float | None:
    """``d[key]`` as a finite float, or None (not a dict, missing, not a number, NaN or infinite)."""
    value = d.get(key) if isinstance(d, dict) else None
    return finite(value) if isinstance(value, (int, float)) else None


SHARE = (0.0, 1.0)  # the range of a share: error bars are clipped to it
NON_NEGATIVE = (0.0, None)


def compare_block(
    rows: dict[str, dict[str, Any]],
    sides: Sequence[str],
    title: str,
    y_label: str,
    first: str = "group",
    bounds: tuple[float | None, float | None] = (None, None),
) -> str:
    """A table and a bar chart of ``{name: {side: {mean, std, n}, p_value, ...}}`` rows (Tables 1–2 style).

    ``bounds``: the range the quantity can take, where the chart clips its ± std error bars.
    """
    numeric = {k for r in rows.values() for k in r if k not in sides and isinstance(r[k], (int, float))}
    extra = sorted(numeric, key=lambda k: (not k.startswith("paired"), k))  # the paired test first
    headers = [first, *sides, *extra]
    data = [[name, *(r.get(s) for s in sides), *(r.get(k) for k in extra)] for name, r in rows.items()]
    p_cols = [i for i, h in enumerate(headers) if "p_value" in h]
    chart = bar_chart(
        list(rows),
        {s: [number(r.get(s), "mean") for r in rows.values()] for s in sides},
        {s: [number(r.get(s), "std") or 0.0 for r in rows.values()] for s in sides},
        title=title,
        y_label=y_label,
        bounds=bounds,
    )
    return table(headers, data, p_cols) + f'<div class="sl-figure">{chart}</div>'


def band_series(band: dict[str, Any] | None, suffix: str) -> dict[str, float | None]:
    """A null band's min, mean and max as chart series (nothing when there is no band)."""
    if not isinstance(band, dict):
        return {}
    names = {"min": f"low{suffix}", "mean": f"mean{suffix}", "max": f"high{suffix}"}
    if f"min{suffix}" in band:
        names = {key: f"{key}{suffix}" for key in names}
    return {f"null {key}": number(band, name) for key, name in names.items()}


def draws_text(data: dict[str, Any]) -> str:
    """ "N draws of base + tuning-sized noise" for a section whose null records its draws."""
    draws = (data.get("null") or data.get("rotation_null") or {}).get("draws")
    return f"{draws} draws of base + noise of the tuning's size" if draws else "base + noise of the tuning's size"


def protocol_line(data: dict[str, Any]) -> str:
    """Which protocol the analysis ran under (named in every section)."""
    protocol = data.get("protocol")
    return f"<p>Protocol: <b>{escape(str(protocol))}</b> (docs/protocols.md).</p>" if protocol else ""


def findings_table(data: dict[str, Any]) -> str:
    """The section's own findings (Holm-adjusted within the analysis): claim, n/reason, p, adjusted p, effect, CI."""
    rows = []
    for f in data.get("finding") or []:
        ci = f.get("ci")
        interval = "–" if not ci else f"{fmt_number(ci[0])} to {fmt_number(ci[1])}"
        status = "shown" if f.get("significant") else ("not shown" if f.get("testable") else "not testable")
        rows.append([f.get("claim"), status, f.get("reason") or "–", f.get("p_value"), f.get("p_adjusted"),
                     f.get("effect_size"), interval])  # fmt: skip
    if not rows:
        return ""
    headers = ["claim", "verdict", "why not testable", "p", "adjusted p (this analysis)", "effect", "95% CI"]
    return "<h3>Findings of this analysis</h3>" + table(headers, rows, p_columns=(4,))


def pair_text(pair: Any) -> str:
    if isinstance(pair, (list, tuple)):
        return " ↔ ".join(str(p) for p in pair)
    if isinstance(pair, dict):
        return " · ".join(f"{k}: {v}" for k, v in pair.items())
    return str(pair)


def by_layer_chart(rows: list[Any], title: str, y_label: str) -> str:
    """A line chart of per-layer values, ticks on whole layers: numbers, or dicts with 'layer' and numeric fields."""
    if all(isinstance(r, (int, float)) for r in rows):
        rows = [{"layer": i, y_label: r} for i, r in enumerate(rows)]
    dicts = [r for r in rows if isinstance(r, dict)]
    x = [r.get("layer", i) for i, r in enumerate(dicts)]
    keys = [k for k in dicts[0] if k != "layer" and isinstance(dicts[0][k], (int, float))] if dicts else []
    series = {label(k): [number(r, k) for r in dicts] for k in keys}
    return line_chart(x, series, title=title, x_label="layer", y_label=y_label, integer_x=True)
