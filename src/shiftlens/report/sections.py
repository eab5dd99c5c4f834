"""HTML of each report section, built from the plain result dicts; every text is escaped here.

Sections tolerate missing or unexpected keys: what they do not recognise is shown as escaped JSON in a
collapsed block, so a new field of an analysis never breaks the report. The building blocks (cells,
tables, charts by layer, findings) are in `shiftlens.report.blocks`.
"""

from __future__ import annotations

import json
from html import escape
from typing import Any

from shiftlens.report.blocks import (
    NON_NEGATIVE,
    SHARE,
    band_series,
    by_layer_chart,
    cell,
    compare_block,
    draws_text,
    findings_table,
    number,
    pair_text,
    protocol_line,
    raw_json,
    table,
)
from shiftlens.report.findings import is_heuristic
from shiftlens.report.labels import label
from shiftlens.report.svg import fmt_number, histogram, line_chart

SECTION_TITLES = {
    "summary": "Summary",
    "notes": "Run notes: failures, exclusions, tokenizers",
    "instructions": "1 · Instruction attribution (gradient × input)",
    "heads": "2 · Attention heads",
    "ffn": "3 · Feed-forward concepts",
    "diff": "4 · Where tuning acted",
    "examples": "Examples: base vs tuned attribution",
    "meta": "Run details",
}


def section(key: str, body: str) -> str:
    """A titled, anchored section."""
    return f'<section id="sl-{key}" class="sl-section"><h2>{escape(SECTION_TITLES[key])}</h2>{body}</section>'


def not_run(what: str) -> str:
    """The placeholder of a section whose analysis is missing from the results."""
    return f'<p class="sl-not-run">{escape(what)} not run: no results were given for it.</p>'


def instructions_html(data: dict[str, Any] | None) -> str:
    """Table 1 (followed vs unfollowed), Table 2 (base vs tuned), position profile, score distributions."""
    if not data:
        return not_run("The instruction analysis")
    parts = [protocol_line(data), findings_table(data)]
    if data.get("table1"):
        parts += [
            "<h3>Followed vs unfollowed responses (tuned model)</h3>",
            compare_block(
                data["table1"], ("followed", "unfollowed"), "Instruction score", "score", bounds=NON_NEGATIVE
            ),
        ]
    if data.get("table2"):
        parts += [
            "<h3>Base vs tuned</h3>",
            compare_block(data["table2"], ("base", "tuned"), "Instruction score", "score", bounds=NON_NEGATIVE),
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
    known |= {"excluded", "params", "protocol_description", "position_profile_by_group", "paper_data", "runs"}
    rest = {k: v for k, v in data.items() if k not in known}
    if rest:
        parts.append(raw_json("Other fields", rest))
    return "".join(parts)


def heads_html(data: dict[str, Any] | None) -> str:
    """Table 3 per layer group, head overlap by layer, example word pairs of chosen verbs."""
    if not data:
        return not_run("The attention-head analysis")
    parts = [protocol_line(data), findings_table(data)]
    if data.get("measure"):
        parts.append(f"<p>Measure: {escape(str(data['measure']))}</p>")
    groups = data.get("groups") or []
    if groups:
        named = {"–".join(str(x) for x in g.get("layers", [])): g for g in groups}
        parts += [
            "<h3>Instruction vs general words per layer group</h3>",
            compare_block(
                named, ("instruction", "general"), "Word share by layer group", "share", "layers", bounds=SHARE
            ),
        ]
    overlap = data.get("head_overlap_by_layer") or []
    if overlap:
        bands = {b.get("layer"): b for b in data.get("head_overlap_null") or []}
        rows = [
            {"layer": r.get("layer"), "observed": number(r, "mean"), **band_series(bands.get(r.get("layer")), "")}
            for r in overlap
        ]
        null = f", beside its null band ({draws_text(data)})" if bands else ""
        title = "Head overlap base vs tuned by layer" + null
        parts.append('<div class="sl-figure">' + by_layer_chart(rows, title, "Jaccard overlap") + "</div>")
    examples = data.get("examples") or {}
    if examples:
        parts.append("<h3>Example word pairs</h3>")
        for verb, pairs in examples.items():
            chips = "".join(f'<span class="sl-chip">{escape(pair_text(p))}</span>' for p in pairs)
            parts.append(f'<div class="sl-pairs"><b>{escape(str(verb))}</b> {chips}</div>')
    return "".join(parts)


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


def ffn_html(data: dict[str, Any] | None) -> str:
    """Task and level shares, per-layer-group shares, rotation by layer, matched components' words."""
    if not data:
        return not_run("The feed-forward analysis")
    parts = [protocol_line(data), _annotator_note(data), findings_table(data)]
    for key, title in (("tasks", "Task categories"), ("levels", "Linguistic levels")):
        if data.get(key):
            parts += [
                f"<h3>{title}: share of nameable concepts</h3>",
                compare_block(data[key], ("base", "tuned"), title, "share", "category", bounds=SHARE),
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
                rows = [{**row, **band_series(r.get("rotation_null"), "_deg")} for row, r in zip(rows, rotation)]
            chart = by_layer_chart(rows, label(key), label(key))
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
    caption = " · ".join(f"{escape(label(k))}: {cell(v)}" for k, v in item.items() if not isinstance(v, (list, dict)))
    columns = "".join(
        f'<div class="sl-words"><b>{escape(label(k))}</b><ol>'
        + "".join(f"<li>{escape(pair_text(w))}</li>" for w in v)
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
            block = f"<h3>{key.capitalize()}</h3>" + table(["name", "value"], rows)
            parts.append(f'<div class="sl-{key}">{block}</div>')  # sl-timings: the one part that differs per run
    rest = {k: v for k, v in meta.items() if k not in {"models", "parameters", "versions", "timings", "tokenizers"}}
    if rest:
        parts.append(raw_json("Other fields", rest))
    return "".join(parts)
