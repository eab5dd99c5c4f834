"""Table 3 of a heads result as rows (console and CSV) and its files: ``table3.csv`` and the head-overlap plot."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from shiftlens.tables import write_csv

if TYPE_CHECKING:
    from shiftlens.analysis.heads import HeadsResult

TABLE_COLUMNS = (
    "layers",
    "instruction mean",
    "instruction std",
    "n",
    "general mean",
    "general std",
    "n",
    "effect",
    "95% CI",
    "p",
    "p (Holm)",
)


def table_rows(result: HeadsResult) -> list[list[Any]]:
    """Table 3 rows of an `analyze_heads` result (None for undefined statistics; the reason if not testable)."""
    rows = []
    for g in result["groups"]:
        ci = g.get("ci")
        interval = None if ci is None else f"[{ci[0]:.3f}, {ci[1]:.3f}]"
        tested = [g["effect_size"], interval, g["p_value"], g["p_adjusted"]]
        rows.append(
            [
                f"{g['layers'][0]}-{g['layers'][1]}",
                g["instruction"]["mean"],
                g["instruction"]["std"],
                g["instruction"]["n"],
                g["general"]["mean"],
                g["general"]["std"],
                g["general"]["n"],
                *(tested if g["testable"] else [None, None, f"not testable ({g['reason']})", None]),
            ]
        )
    return rows


def write_files(result: HeadsResult, out: str | Path) -> list[Path]:
    """Write ``table3.csv`` and the head-overlap plot (PNG + SVG) under ``out`` (the JSON: `HeadsResult.save`)."""
    from matplotlib.ticker import MaxNLocator

    from shiftlens.plots import BASE_COLOR, save_figure, subplots

    out = Path(out)
    paths = [write_csv(out / "table3.csv", TABLE_COLUMNS, table_rows(result))]
    fig, (axis,) = subplots(1, width=6.0)
    layers = [entry["layer"] for entry in result["head_overlap_by_layer"]]
    for entry in result["head_overlap_by_layer"]:
        values = [v for v in entry["heads"] if v is not None]
        axis.scatter([entry["layer"]] * len(values), values, s=8, color=BASE_COLOR, alpha=0.4)
    axis.plot(layers, [e["mean"] for e in result["head_overlap_by_layer"]], color="black", label="mean over heads")
    bands = [b for b in result.get("head_overlap_null") or [] if b.get("min") is not None]
    if bands:
        x = [b["layer"] for b in bands]
        label = f"null: base vs base + tuning-sized noise, min–max of {len(bands[0]['draws'])} draws"
        axis.fill_between(x, [b["min"] for b in bands], [b["max"] for b in bands], color="grey", alpha=0.3, label=label)
    axis.set(xlabel="layer", ylabel="Jaccard overlap of pairs (base vs tuned)", ylim=(0, 1))
    axis.xaxis.set_major_locator(MaxNLocator(integer=True))
    axis.legend()
    return paths + save_figure(fig, out / "head_overlap")
