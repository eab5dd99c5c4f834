"""Small hand-written SVG charts (bars with error bars, lines, histograms) for the self-contained report.

Every chart is a standalone ``<svg>`` string with all text escaped and a ``<title>`` on each mark, so
values show on hover without any script and the report needs no plotting library in the browser.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from html import escape

import numpy as np

MODEL_COLORS = {"base": "#2b6cb0", "tuned": "#dd6b20"}
PALETTE = ("#2f855a", "#805ad5", "#c53030", "#718096", "#d69e2e", "#319795")

_WIDTH, _HEIGHT = 560, 260
_MARGIN = {"left": 56, "right": 12, "top": 28, "bottom": 56}


def series_color(name: str, index: int) -> str:
    """The colour of a series: fixed for base/tuned so every chart agrees, else other colours in order."""
    return MODEL_COLORS.get(name, PALETTE[index % len(PALETTE)])


def fmt_number(value: float) -> str:
    """A short human form of a number (3 significant digits, no exponent for everyday magnitudes)."""
    if value is None or not math.isfinite(value):
        return "–"
    if value != 0 and (abs(value) < 1e-3 or abs(value) >= 1e5):
        return f"{value:.2e}"
    return f"{value:.3g}"


def nice_ticks(lo: float, hi: float, count: int = 5, *, integer: bool = False) -> list[float]:
    """Round tick positions covering [lo, hi] (1-2-5 steps); ``integer`` keeps whole numbers only (layers)."""
    if not (math.isfinite(lo) and math.isfinite(hi)):
        return [0.0]
    if hi <= lo:
        hi = lo + (abs(lo) or 1.0)
    raw = (hi - lo) / max(count, 1)
    magnitude = 10 ** math.floor(math.log10(raw))
    step = next(m * magnitude for m in (1, 2, 5, 10) if m * magnitude >= raw)
    if integer:
        step = max(round(step), 1)
    start = math.floor(lo / step) * step
    ticks = []
    value = start
    while not ticks or ticks[-1] < hi - step * 1e-9:
        ticks.append(round(value, 12))
        value += step
    return ticks


class _Frame:
    """Maps data coordinates to pixels inside the plot margins and draws the axes."""

    def __init__(self, y_lo: float, y_hi: float, width: int = _WIDTH, height: int = _HEIGHT) -> None:
        self.ticks = nice_ticks(min(y_lo, 0.0) if y_lo >= 0 else y_lo, y_hi)
        self.y_lo, self.y_hi = self.ticks[0], self.ticks[-1]
        self.width, self.height = width, height
        self.x0, self.x1 = _MARGIN["left"], width - _MARGIN["right"]
        self.y0, self.y1 = height - _MARGIN["bottom"], _MARGIN["top"]

    def y(self, value: float) -> float:
        """Pixel row of a data value."""
        span = (self.y_hi - self.y_lo) or 1.0
        return self.y0 - (value - self.y_lo) / span * (self.y0 - self.y1)

    def axes(self, title: str, y_label: str, x_label: str = "") -> list[str]:
        """Title, y grid with tick labels, axis labels."""
        parts = [f'<text x="{self.width / 2:.1f}" y="16" class="sl-chart-title">{escape(title)}</text>']
        for tick in self.ticks:
            yy = self.y(tick)
            parts.append(f'<line x1="{self.x0}" x2="{self.x1}" y1="{yy:.1f}" y2="{yy:.1f}" class="sl-grid"/>')
            parts.append(
                f'<text x="{self.x0 - 4}" y="{yy + 4:.1f}" class="sl-tick" text-anchor="end">'
                f"{escape(fmt_number(tick))}</text>"
            )
        mid = (self.y0 + self.y1) / 2
        parts.append(
            f'<text transform="translate(12,{mid:.1f}) rotate(-90)" class="sl-axis-label">{escape(y_label)}</text>'
        )
        if x_label:
            parts.append(
                f'<text x="{(self.x0 + self.x1) / 2:.1f}" y="{self.height - 6}" class="sl-axis-label">'
                f"{escape(x_label)}</text>"
            )
        return parts


def _svg(frame: _Frame, title: str, body: list[str], legend: Sequence[str]) -> str:
    items = []
    x = frame.x0
    for i, name in enumerate(legend):
        items.append(
            f'<rect x="{x}" y="{frame.height - 30}" width="10" height="10" '
            f'fill="{series_color(name, i)}"/>'
            f'<text x="{x + 14}" y="{frame.height - 21}" class="sl-tick">{escape(name)}</text>'
        )
        x += 24 + 7 * len(name)
    return (
        f'<svg class="sl-chart" viewBox="0 0 {frame.width} {frame.height}" width="{frame.width}" '
        f'height="{frame.height}" role="img" aria-label="{escape(title)}" xmlns="http://www.w3.org/2000/svg">'
        + "".join(body + items)
        + "</svg>"
    )


def bar_chart(
    categories: Sequence[str],
    series: dict[str, Sequence[float]],
    errors: dict[str, Sequence[float]] | None = None,
    *,
    title: str,
    y_label: str,
    x_label: str = "",
    label_every: int = 1,
    bounds: tuple[float | None, float | None] = (None, None),
) -> str:
    """Grouped bars: one group per category, one bar per series, optional ± error bars (e.g. std).

    ``bounds`` is the range the quantity can take (a share: 0 to 1): error bars are clipped to it, so a
    standard deviation never draws a share below 0; the tooltip keeps the full ± value.
    """
    errors = errors or {}
    floor = -math.inf if bounds[0] is None else bounds[0]
    ceiling = math.inf if bounds[1] is None else bounds[1]

    def whisker(value: float, err: float) -> tuple[float, float]:
        return max(value - err, floor), min(value + err, ceiling)

    values: list[float] = []
    for name, vals in series.items():
        for value, err in zip(vals, errors.get(name) or [0.0] * len(vals)):
            if value is not None and math.isfinite(value):
                values += [value, *whisker(value, err or 0.0)]
    frame = _Frame(min(values, default=0.0), max(values, default=1.0))
    body = frame.axes(title, y_label, x_label)
    slot = (frame.x1 - frame.x0) / max(len(categories), 1)
    bar_w = slot * 0.8 / max(len(series), 1)
    for c, category in enumerate(categories):
        left = frame.x0 + c * slot + slot * 0.1
        for s, (name, vals) in enumerate(series.items()):
            value = vals[c]
            if value is None or not math.isfinite(value):
                continue
            top, base = sorted((frame.y(value), frame.y(max(frame.y_lo, 0.0))))
            x = left + s * bar_w
            err = (errors.get(name) or [0.0] * len(vals))[c]
            tip = f"{category} · {name}: {fmt_number(value)}" + (f" ± {fmt_number(err)}" if err else "")
            body.append(
                f'<rect x="{x:.1f}" y="{top:.1f}" width="{bar_w * 0.92:.1f}" height="{base - top:.1f}" '
                f'fill="{series_color(name, s)}"><title>{escape(tip)}</title></rect>'
            )
            if err:
                cx, (low, high) = x + bar_w * 0.46, (frame.y(v) for v in whisker(value, err))
                body.append(f'<line x1="{cx:.1f}" x2="{cx:.1f}" y1="{low:.1f}" y2="{high:.1f}" class="sl-err"/>')
        if c % label_every:
            continue
        label = category if len(category) <= 14 else category[:13] + "…"
        body.append(
            f'<text x="{left + slot * 0.4:.1f}" y="{frame.y0 + 14}" class="sl-tick" '
            f'text-anchor="middle">{escape(label)}<title>{escape(category)}</title></text>'
        )
    return _svg(frame, title, body, list(series))


def line_chart(
    x: Sequence[float],
    series: dict[str, Sequence[float | None]],
    *,
    title: str,
    x_label: str,
    y_label: str,
    integer_x: bool = False,
) -> str:
    """Lines with point markers over a shared x axis; None values break nothing, they are skipped.

    ``integer_x`` puts ticks on whole numbers only (an x axis of layers has no layer 0.5).
    """
    values = [v for vals in series.values() for v in vals if v is not None and math.isfinite(v)]
    frame = _Frame(min(values, default=0.0), max(values, default=1.0))
    body = frame.axes(title, y_label, x_label)
    x_lo, x_hi = (min(x), max(x)) if len(x) else (0, 1)
    span = (x_hi - x_lo) or 1.0

    def px(value: float) -> float:
        return frame.x0 + (value - x_lo) / span * (frame.x1 - frame.x0)

    for tick in nice_ticks(x_lo, x_hi, 8, integer=integer_x):
        if x_lo <= tick <= x_hi:
            body.append(
                f'<text x="{px(tick):.1f}" y="{frame.y0 + 14}" class="sl-tick" text-anchor="middle">'
                f"{escape(fmt_number(tick))}</text>"
            )
    for s, (name, vals) in enumerate(series.items()):
        color = series_color(name, s)
        points = [(px(xv), frame.y(v), xv, v) for xv, v in zip(x, vals) if v is not None and math.isfinite(v)]
        if len(points) > 1:
            path = " ".join(f"{a:.1f},{b:.1f}" for a, b, _, _ in points)
            body.append(f'<polyline points="{path}" fill="none" stroke="{color}" stroke-width="2"/>')
        for a, b, xv, v in points:
            tip = f"{name} at {fmt_number(xv)}: {fmt_number(v)}"
            body.append(f'<circle cx="{a:.1f}" cy="{b:.1f}" r="3" fill="{color}"><title>{escape(tip)}</title></circle>')
    return _svg(frame, title, body, list(series))


def histogram(series: dict[str, Sequence[float]], *, title: str, x_label: str, bins: int = 16) -> str:
    """Grouped-bar histograms of several samples on shared bins (counts on the y axis)."""
    finite = {
        k: np.asarray([v for v in vals if v is not None and math.isfinite(v)], dtype=float)
        for k, vals in series.items()
    }
    pooled = np.concatenate(list(finite.values()) or [np.zeros(0)])
    edges = np.histogram_bin_edges(pooled if pooled.size else np.zeros(1), bins=bins)
    labels = [f"{fmt_number(a)}–{fmt_number(b)}" for a, b in zip(edges[:-1], edges[1:])]
    counts = {k: np.histogram(v, bins=edges)[0].astype(float).tolist() for k, v in finite.items()}
    return bar_chart(labels, counts, title=title, y_label="examples", x_label=x_label, label_every=4)


HEAT_LOW, HEAT_HIGH = (247, 251, 255), (8, 48, 107)  # white to dark blue: 0 to the scale's maximum


def heat_color(value: float, high: float) -> str:
    """The cell colour of ``value`` on a 0 … ``high`` scale (clipped)."""
    t = min(max(value / high, 0.0), 1.0) if high > 0 else 0.0
    return "#" + "".join(f"{round(a + (b - a) * t):02x}" for a, b in zip(HEAT_LOW, HEAT_HIGH))


def heatmap(
    rows: Sequence[str],
    columns: Sequence[str],
    values: Sequence[Sequence[float | None]],
    *,
    title: str,
    value_label: str,
    high: float | None = None,
    cell: tuple[int, int] = (44, 12),
) -> str:
    """A grid of cells coloured 0 → ``high`` (default: the largest value), each with its value on hover.

    Missing (None) cells are grey. Charts sharing ``high`` are comparable cell by cell (an observed map
    beside its null's).
    """
    finite = [v for row in values for v in row if v is not None and math.isfinite(v)]
    high = max(finite, default=0.0) if high is None else high
    left, top, (w, h) = 64, 28, cell
    width, height = left + w * len(columns) + 12, top + h * len(rows) + 44
    body = [f'<text x="{width / 2:.1f}" y="16" class="sl-chart-title">{escape(title)}</text>']
    for c, name in enumerate(columns):
        body.append(
            f'<text x="{left + (c + 0.5) * w:.1f}" y="{top + h * len(rows) + 14}" class="sl-tick" '
            f'text-anchor="middle">{escape(name)}</text>'
        )
    for r, name in enumerate(rows):
        y = top + r * h
        body.append(f'<text x="{left - 4}" y="{y + h - 2}" class="sl-tick" text-anchor="end">{escape(name)}</text>')
        for c, value in enumerate(values[r]):
            known = value is not None and math.isfinite(value)
            fill = heat_color(value, high) if known else "#cbd5e0"
            tip = f"{name} · {columns[c]}: {fmt_number(value) if known else 'none'}"
            body.append(
                f'<rect x="{left + c * w}" y="{y}" width="{w - 1}" height="{h - 1}" fill="{fill}">'
                f"<title>{escape(tip)}</title></rect>"
            )
    scale = f"{value_label}: white 0 → dark {fmt_number(high)}"
    body.append(f'<text x="{left}" y="{height - 8}" class="sl-tick">{escape(scale)}</text>')
    return (
        f'<svg class="sl-chart" viewBox="0 0 {width} {height}" width="{width}" height="{height}" role="img" '
        f'aria-label="{escape(title)}" xmlns="http://www.w3.org/2000/svg">' + "".join(body) + "</svg>"
    )
