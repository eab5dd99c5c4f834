"""The report's "Where tuning acted" section: the weight map as heatmaps beside its null, per-head bars,
per-token KL by position beside its null, the logit lens, and the tokens where the models disagree most
(each linked to its example in the attribution explorer). Built from `shiftlens.diff.results`; all text escaped.
"""

from __future__ import annotations

from html import escape
from typing import Any

from shiftlens.report.blocks import Html, findings_table, table
from shiftlens.report.sections import not_run
from shiftlens.report.svg import bar_chart, heatmap, line_chart

LAYER_MODULES = ("q", "k", "v", "o", "gate", "up", "down", "attn_norm", "mlp_norm")  # the heatmaps' columns
HEAD_MODULES = ("q", "k", "v", "o")
SHOWN = {"attn_norm": "attn norm", "mlp_norm": "MLP norm", "final_norm": "final norm"}  # in the reader's words
PAIRS = (  # (title, observed field, null field, unit): each drawn beside its null on one colour scale
    ("Principal angle of the top-8 subspace", "principal_angle_deg", "principal_angle_null_deg", "degrees"),
    ("Effective rank of ΔW", "effective_rank", "effective_rank_null", "rank"),
)
TOKEN_HEADERS = ["example", "position", "token", "KL(tuned ‖ base)", "KL(null ‖ base)", "p base", "p tuned"]
TOKEN_HEADERS += ["rank base", "rank tuned"]


def example_link(example_id: Any) -> Html:
    """A link that opens the example in the attribution explorer (and jumps to the explorer)."""
    text = escape(str(example_id))
    return Html(f'<a href="#sl-examples" class="sl-example-link" data-example="{text}">{text}</a>')


def _grid(modules: list[dict[str, Any]], field: str) -> tuple[list[str], list[str], list[list[Any]]]:
    """Layers × modules of one field (the modules a layer has, in `LAYER_MODULES` order)."""
    layers = sorted({m["layer"] for m in modules if m["layer"] >= 0})
    present = {m["module"] for m in modules if m["layer"] >= 0}
    columns = [c for c in LAYER_MODULES if c in present] + sorted(present - set(LAYER_MODULES))
    cells = {(m["layer"], m["module"]): m.get(field) for m in modules}
    grid = [[cells.get((i, c)) for c in columns] for i in layers]
    return [f"layer {i}" for i in layers], [SHOWN.get(c, c) for c in columns], grid


def _figure(svg: str) -> str:
    return f'<div class="sl-figure">{svg}</div>'


def weights_html(data: dict[str, Any]) -> str:
    """The heatmaps (relative size; angle and rank beside their nulls), the model-level rows and per-head bars."""
    modules = data.get("modules") or []
    if not modules:
        return ""
    rows, columns, values = _grid(modules, "rel_frobenius")
    parts = [
        "<h3>Weight deltas by layer and module</h3>",
        _figure(heatmap(rows, columns, values, title="‖ΔW‖ / ‖W‖", value_label="relative Frobenius norm")),
    ]
    for title, observed, null, unit in PAIRS:
        if not any(m.get(null) is not None for m in modules):
            continue
        grids = [_grid(modules, field) for field in (observed, null)]
        high = max((v for g in grids for row in g[2] for v in row if v is not None), default=0.0)
        for (rows, columns, values), which in zip(grids, ("tuned", "null: base + noise of ΔW's size")):
            parts.append(
                _figure(heatmap(rows, columns, values, title=f"{title} ({which})", value_label=unit, high=high))
            )
    outside = [m for m in modules if m["layer"] < 0]
    if outside:
        headers = ["module", "‖ΔW‖ / ‖W‖", "effective rank", "its null", "principal angle °", "its null"]
        keys = ("rel_frobenius", "effective_rank", "effective_rank_null", "principal_angle_deg")
        keys += ("principal_angle_null_deg",)
        parts.append(
            "<h4>Outside the layers</h4>"
            + table(headers, [[SHOWN.get(m["module"], m["module"]), *(m.get(k) for k in keys)] for m in outside])
        )
    heads = data.get("heads") or []
    for module in HEAD_MODULES:
        mine = [h for h in heads if h["module"] == module]
        if not mine:
            continue
        per_layer = len({h["head"] for h in mine})
        categories = [f"L{h['layer']}.h{h['head']}" for h in mine]
        chart = bar_chart(
            categories,
            {"‖ΔW‖ / ‖W‖": [h["rel_frobenius"] for h in mine]},
            title=f"Per head: the {module} projection (its {'columns' if module == 'o' else 'rows'})",
            y_label="relative Frobenius norm",
            x_label="layer.head",
            label_every=per_layer,
        )
        parts.append(_figure(chart))
    return "".join(parts)


def tokens_html(tokens: dict[str, Any]) -> str:
    """KL by relative position beside its null, the logit lens of both models, the most disagreeing tokens."""
    if not tokens:
        return ""
    mean, null = tokens.get("mean_kl"), tokens.get("mean_kl_null")
    text = f"{tokens.get('examples', 0)} examples; mean KL(tuned ‖ base) {_fmt(mean)} nats"
    parts = [
        "<h3>Per-token divergence</h3>",
        f"<p>{escape(text)}" + (f", its null {escape(_fmt(null))}" if null is not None else "") + ".</p>",
    ]
    bins = tokens.get("by_relative_position") or []
    if bins:
        x = [(b["bin"] + 0.5) / len(bins) for b in bins]
        series = {"KL(tuned ‖ base)": [b.get("mean_kl") for b in bins]}
        if any(b.get("mean_kl_null") is not None for b in bins):
            series["KL(null ‖ base)"] = [b.get("mean_kl_null") for b in bins]
        parts.append(
            _figure(
                line_chart(
                    x,
                    series,
                    title="KL by relative position in the response",
                    x_label="position in response (0 = start)",
                    y_label="mean KL (nats)",
                )
            )
        )
    lens = tokens.get("logit_lens") or {}
    by_layer = {role: lens.get(f"mean_probability_by_layer_{role}") or [] for role in ("base", "tuned")}
    if any(by_layer.values()):
        n = max(len(v) for v in by_layer.values())
        chart = line_chart(
            list(range(n)),
            by_layer,
            title="Logit lens: probability of the next response token",
            x_label="layer read through the final norm and unembedding",
            y_label="mean probability",
            integer_x=True,
        )
        parts.append(_figure(chart))
        formed = lens.get("mean_formation_layer") or {}
        if formed.get("base") is not None:
            parts.append(f"<p>{escape(_formation_text(formed, lens.get('tokens_formed') or {}))}</p>")
    top = tokens.get("top_tokens") or []
    if top:
        rows = [
            [
                example_link(t.get("id")),
                t.get("position"),
                repr(t.get("token")),
                t.get("kl"),
                t.get("kl_null"),
                t.get("p_base"),
                t.get("p_tuned"),
                t.get("rank_base"),
                t.get("rank_tuned"),
            ]
            for t in top
        ]
        parts.append("<h4>Where the models disagree most</h4>" + table(TOKEN_HEADERS, rows))
    return "".join(parts)


def _fmt(value: Any) -> str:
    return "–" if value is None else f"{value:.4g}"


def _formation_text(formed: dict[str, Any], counts: dict[str, Any]) -> str:
    return (
        f"Where predictions form (first layer from which the token stays the top choice), over the "
        f"{counts.get('both', '?')} tokens both models predict: base layer {_fmt(formed.get('base'))}, tuned "
        f"{_fmt(formed.get('tuned'))} (tuned − base {_fmt(formed.get('tuned_minus_base'))})."
    )


def diff_html(data: dict[str, Any] | None) -> str:
    """The section body, or "not run"."""
    if not data:
        return not_run("The diff step (where tuning acted)")
    parts = [
        f'<p class="sl-warning">{escape(part)}: {escape(why)}</p>' for part, why in (data.get("not_run") or {}).items()
    ]
    parts.append(f"<p>Nulls. {escape(str(data.get('nulls') or ''))}</p>")
    parts += [findings_table(data), weights_html(data), tokens_html(data.get("tokens") or {})]
    return "".join(parts)
