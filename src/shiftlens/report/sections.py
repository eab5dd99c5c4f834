"""HTML of each report section, built from the plain result dicts; every text is escaped here.

Sections tolerate missing or unexpected keys: what they do not recognise is shown as escaped JSON in a
collapsed block, so a new field of an analysis never breaks the report.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from html import escape
from typing import Any

from shiftlens.evidence import ALPHA
from shiftlens.report.findings import fmt_p, is_heuristic
from shiftlens.report.svg import bar_chart, fmt_number, histogram, line_chart

SECTION_TITLES = {
    "summary": "Summary",
    "instructions": "1 · Instruction attribution (gradient × input)",
    "heads": "2 · Attention heads",
    "ffn": "3 · Feed-forward concepts",
    "examples": "Examples: base vs tuned attribution",
    "meta": "Run details",
}


def section(key: str, body: str) -> str:
    """A titled, anchored section."""
    return f'<section id="sl-{key}" class="sl-section"><h2>{escape(SECTION_TITLES[key])}</h2>{body}</section>'


def not_run(what: str) -> str:
    """The placeholder of a section whose analysis is missing from the results."""
    return f'<p class="sl-not-run">{escape(what)} not run: no results were given for it.</p>'


def cell(value: Any) -> str:
    """One table cell's escaped text: numbers shortened, stats dicts as mean ± std (n)."""
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
    """An HTML table; cells in ``p_columns`` are p-values, marked when below `ALPHA`."""
    head = "".join(f"<th>{escape(h)}</th>" for h in headers)
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


def raw_json(label: str, value: Any) -> str:
    """A collapsed block with a value as escaped, indented JSON."""
    text = json.dumps(value, indent=1, default=str, ensure_ascii=False)
    return f"<details><summary>{escape(label)}</summary><pre>{escape(text)}</pre></details>"


def _stat(d: Any, key: str) -> float | None:
    value = d.get(key) if isinstance(d, dict) else None
    return float(value) if isinstance(value, (int, float)) and math.isfinite(value) else None


def compare_block(
    rows: dict[str, dict[str, Any]], sides: Sequence[str], title: str, y_label: str, first: str = "group"
) -> str:
    """A table and a bar chart of ``{name: {side: {mean, std, n}, p_value, ...}}`` rows (Tables 1–2 style)."""
    numeric = {k for r in rows.values() for k in r if k not in sides and isinstance(r[k], (int, float))}
    extra = sorted(numeric, key=lambda k: (not k.startswith("paired"), k))  # the paired test first
    headers = [first, *sides, *extra]
    data = [[name, *(r.get(s) for s in sides), *(r.get(k) for k in extra)] for name, r in rows.items()]
    p_cols = [i for i, h in enumerate(headers) if "p_value" in h]
    chart = bar_chart(
        list(rows),
        {s: [_stat(r.get(s), "mean") for r in rows.values()] for s in sides},
        {s: [_stat(r.get(s), "std") or 0.0 for r in rows.values()] for s in sides},
        title=title,
        y_label=y_label,
    )
    return table(headers, data, p_cols) + f'<div class="sl-figure">{chart}</div>'


def instructions_html(data: dict[str, Any] | None) -> str:
    """Table 1 (followed vs unfollowed), Table 2 (base vs tuned), position profile, score distributions."""
    if not data:
        return not_run("The instruction analysis")
    parts = [_protocol_line(data), findings_table(data)]
    if data.get("table1"):
        parts += [
            "<h3>Followed vs unfollowed responses (tuned model)</h3>",
            compare_block(data["table1"], ("followed", "unfollowed"), "Instruction score", "score"),
        ]
    if data.get("table2"):
        parts += [
            "<h3>Base vs tuned</h3>",
            compare_block(data["table2"], ("base", "tuned"), "Instruction score", "score"),
        ]
    parts.append(_controls_html(data))
    profile = data.get("position_profile") or {}
    if profile:
        length = max(len(v) for v in profile.values())
        x = [(i + 0.5) / length for i in range(length)]
        parts.append(
            '<div class="sl-figure">'
            + line_chart(
                x,
                profile,
                title="Importance by relative prompt position",
                x_label="position in prompt (0 = start)",
                y_label="mean importance",
            )
            + "</div>"
        )
    scores = data.get("scores") or []
    if scores:
        parts.append(
            '<div class="sl-figure">'
            + histogram(
                {m: [s.get(m) for s in scores] for m in ("base", "tuned")},
                title=f"Instruction score per example ({len(scores)} examples)",
                x_label="instruction score",
            )
            + "</div>"
        )
    known = {"table1", "table2", "position_profile", "scores", "test", "finding", "protocol", "nulls"}
    known |= {"excluded", "params", "protocol_description", "position_profile_by_group", "paper_data"}
    rest = {k: v for k, v in data.items() if k not in known}
    if rest:
        parts.append(raw_json("Other fields", rest))
    return "".join(parts)


def heads_html(data: dict[str, Any] | None) -> str:
    """Table 3 per layer group, head overlap by layer, example word pairs of chosen verbs."""
    if not data:
        return not_run("The attention-head analysis")
    parts = [_protocol_line(data), findings_table(data)]
    if data.get("measure"):
        parts.append(f"<p>Measure: {escape(str(data['measure']))}</p>")
    groups = data.get("groups") or []
    if groups:
        named = {"–".join(str(x) for x in g.get("layers", [])): g for g in groups}
        parts += [
            "<h3>Instruction vs general words per layer group</h3>",
            compare_block(named, ("instruction", "general"), "Word share by layer group", "share", "layers"),
        ]
    overlap = data.get("head_overlap_by_layer") or []
    if overlap:
        bands = {b.get("layer"): b for b in data.get("head_overlap_null") or []}
        rows = [
            {"layer": r.get("layer"), "observed": _stat(r, "mean"), **_band(bands.get(r.get("layer")), "")}
            for r in overlap
        ]
        title = "Head overlap base vs tuned by layer" + (f", beside its null band ({_draws(data)})" if bands else "")
        parts.append('<div class="sl-figure">' + _by_layer_chart(rows, title, "Jaccard overlap") + "</div>")
    examples = data.get("examples") or {}
    if examples:
        parts.append("<h3>Example word pairs</h3>")
        for verb, pairs in examples.items():
            chips = "".join(f'<span class="sl-chip">{escape(_pair_text(p))}</span>' for p in pairs)
            parts.append(f'<div class="sl-pairs"><b>{escape(str(verb))}</b> {chips}</div>')
    return "".join(parts)


def _band(band: dict[str, Any] | None, suffix: str) -> dict[str, float | None]:
    """A null band's min, mean and max as chart series (nothing when there is no band)."""
    if not isinstance(band, dict):
        return {}
    names = {"min": f"low{suffix}", "mean": f"mean{suffix}", "max": f"high{suffix}"}
    if f"min{suffix}" in band:
        names = {key: f"{key}{suffix}" for key in names}
    return {f"null {key}": _stat(band, name) for key, name in names.items()}


def _draws(data: dict[str, Any]) -> str:
    """ "N draws of base + tuning-sized noise" for a section whose null records its draws."""
    draws = (data.get("null") or data.get("rotation_null") or {}).get("draws")
    return f"{draws} draws of base + noise of the tuning's size" if draws else "base + noise of the tuning's size"


def _control_row(name: str, entry: dict[str, Any]) -> list[Any]:
    ci = entry.get("ci")
    interval = "–" if not ci else f"{fmt_number(ci[0])} to {fmt_number(ci[1])}"
    return [name, entry.get("instruction_gain"), entry.get("control_gain"), entry.get("effect_size"), interval,
            entry.get("reason") or "–", entry.get("p_value"), entry.get("p_adjusted")]  # fmt: skip


def _controls_html(data: dict[str, Any]) -> str:
    """The tuning's gain on the instruction beside its gain on length-matched control spans (sound protocol)."""
    table2 = data.get("table2") or {}
    groups = {g: row["control"] for g, row in table2.items() if isinstance(row.get("control"), dict)}
    strata = (data.get("nulls") or {}).get("strata") or {}
    if not groups and not strata:
        return ""
    headers = ["prompts", "instruction gain", "control-span gain", "effect", "95% CI", "why not testable", "p",
               "adjusted p"]  # fmt: skip
    rows = [_control_row(g, c) for g, c in groups.items()]
    rows += [_control_row(f"instruction at the {place} of the prompt", c) for place, c in strata.items()]
    note = (
        "<p>Gain = tuned − base instruction score of a prompt. Control spans: the same number of prompt tokens at "
        "other places of the same prompt (every rotation of the instruction mask); the strata take controls from the "
        "same third of the prompt. Prompts whose instruction is the whole prompt have no control span.</p>"
    )
    return "<h3>Instruction vs control spans (the null beside the gain)</h3>" + note + table(headers, rows, (6, 7))


def _protocol_line(data: dict[str, Any]) -> str:
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


def _pair_text(pair: Any) -> str:
    if isinstance(pair, (list, tuple)):
        return " ↔ ".join(str(p) for p in pair)
    if isinstance(pair, dict):
        return " · ".join(f"{k}: {v}" for k, v in pair.items())
    return str(pair)


def _by_layer_chart(rows: list[Any], title: str, y_label: str) -> str:
    """A line chart of per-layer values: a list of numbers, or of dicts with 'layer' and numeric fields."""
    if all(isinstance(r, (int, float)) for r in rows):
        return line_chart(list(range(len(rows))), {y_label: rows}, title=title, x_label="layer", y_label=y_label)
    dicts = [r for r in rows if isinstance(r, dict)]
    x = [r.get("layer", i) for i, r in enumerate(dicts)]
    keys = [k for k in dicts[0] if k != "layer" and isinstance(dicts[0][k], (int, float))] if dicts else []
    series = {k: [_stat(r, k) for r in dicts] for k in keys}
    return line_chart(x, series, title=title, x_label="layer", y_label=y_label)


def ffn_html(data: dict[str, Any] | None) -> str:
    """Task and level shares, per-layer-group shares, rotation by layer, matched components' words."""
    if not data:
        return not_run("The feed-forward analysis")
    parts = [_protocol_line(data), _annotator_note(data), findings_table(data)]
    for key, title in (("tasks", "Task categories"), ("levels", "Linguistic levels")):
        if data.get(key):
            parts += [
                f"<h3>{title}: share of nameable concepts</h3>",
                compare_block(data[key], ("base", "tuned"), title, "share", "category"),
            ]
    groups = data.get("per_layer_group") or []
    for key in ("tasks", "levels"):
        if groups and isinstance(groups[0], dict) and groups[0].get(key):
            parts += [f"<h3>{key.capitalize()} by layer group (base → tuned)</h3>", _layer_group_table(groups, key)]
    rotation = data.get("rotation_by_layer") or []
    if rotation:
        parts.append("<h3>Rotation of FFN principal components, base → tuned</h3>")
        for key in [k for k in rotation[0] if k not in ("layer", "n_components", "rotation_null")]:
            rows = [{"layer": r.get("layer"), key: r.get(key)} for r in rotation]
            if key == "mean_principal_angle_deg":
                rows = [{**row, **_band(r.get("rotation_null"), "_deg")} for row, r in zip(rows, rotation)]
            chart = _by_layer_chart(rows, key.replace("_", " "), key.replace("_", " "))
            parts.append(f'<div class="sl-figure">{chart}</div>')
    matched = data.get("matched_examples") or []
    if matched:
        parts.append(
            f"<details><summary>Matched components: top words side by side ({len(matched)} pairs)</summary>"
            + "".join(_matched_html(m) for m in matched)
            + "</details>"
        )
    return "".join(parts)


def _annotator_note(data: dict[str, Any]) -> str:
    """Which annotator labelled the concepts, flagged loudly when the labels are heuristic."""
    annotations = data.get("annotations")
    if "annotations" in data and not annotations:
        return "<p>Concepts were not annotated: only the rotation of the components is shown.</p>"
    names = {str(a.get("annotator")) for a in (annotations or {}).values() if isinstance(a, dict)}
    names |= {str(data["annotator"])} if data.get("annotator") else set()
    text = f"Concept labels from the {escape(', '.join(sorted(names)) or 'unrecorded')} annotator."
    if is_heuristic(data):
        text += " <b>Heuristic labels</b> (offline lexical annotator), not LLM or human annotations."
    return f"<p>{text}</p>"


def _layer_group_table(groups: list[dict[str, Any]], key: str) -> str:
    """Rows = categories, columns = layer groups, cells = base → tuned share."""
    categories = list(dict.fromkeys(c for g in groups for c in g.get(key, {})))
    headers = ["category"] + ["layers " + "–".join(str(x) for x in g.get("layers", [g.get("group")])) for g in groups]
    rows = []
    for c in categories:
        row = [c]
        for g in groups:
            pair = g.get(key, {}).get(c) or {}
            row.append(f"{cell(pair.get('base'))} → {cell(pair.get('tuned'))}")
        rows.append(row)
    return table(headers, rows)


def _matched_html(item: Any) -> str:
    """One matched component pair: scalar fields as a caption, word lists as side-by-side columns."""
    if not isinstance(item, dict):
        return f"<p>{escape(str(item))}</p>"
    caption = " · ".join(f"{k}: {cell(v)}" for k, v in item.items() if not isinstance(v, (list, dict)))
    columns = "".join(
        f'<div class="sl-words"><b>{escape(k)}</b><ol>'
        + "".join(f"<li>{escape(_pair_text(w))}</li>" for w in v)
        + "</ol></div>"
        for k, v in item.items()
        if isinstance(v, list)
    )
    return f'<div class="sl-matched"><p>{caption}</p><div class="sl-columns">{columns}</div></div>'


def meta_html(meta: dict[str, Any] | None) -> str:
    """Models (name, weight hash, dtype), parameters, package versions and timings."""
    if not meta:
        return not_run("Run metadata")
    parts = []
    models = meta.get("models") or []
    if isinstance(models, dict):
        models = [{"role": k, **v} for k, v in models.items()]
    if models:
        keys = list(dict.fromkeys(k for m in models for k in m))
        parts.append("<h3>Models</h3>" + table(keys, [[m.get(k) for k in keys] for m in models]))
    for key in ("parameters", "versions", "timings"):
        if meta.get(key):
            rows = [[k, v if not isinstance(v, (dict, list)) else json.dumps(v)] for k, v in meta[key].items()]
            parts.append(f"<h3>{key.capitalize()}</h3>" + table(["name", "value"], rows))
    rest = {k: v for k, v in meta.items() if k not in {"models", "parameters", "versions", "timings"}}
    if rest:
        parts.append(raw_json("Other fields", rest))
    return "".join(parts)
