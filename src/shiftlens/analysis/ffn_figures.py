"""Figures of the FFN comparison (PNG and SVG): rotation by layer, and Figure 3's shares per layer group."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from shiftlens.plots import save_figure, subplots

if TYPE_CHECKING:
    from shiftlens.analysis.ffn import FfnResult


def plot_rotation(rotation_by_layer: list[dict[str, Any]], out: Path) -> list[Path]:
    """Mean principal angle (with its null band [min, max] when computed), matched |cos| and word overlap, by layer."""
    layers = [row["layer"] for row in rotation_by_layer]
    figure, (left, right) = subplots(2, width=5.0, height=3.5)
    left.plot(layers, [row["mean_principal_angle_deg"] for row in rotation_by_layer], marker="o", label="observed")
    bands = [row.get("rotation_null") for row in rotation_by_layer]
    if all(bands):
        low, high = [band["low_deg"] for band in bands], [band["high_deg"] for band in bands]
        left.fill_between(layers, low, high, color="0.8", label=f"null band ({bands[0]['draws']} draws)")
        left.legend()
    left.set(xlabel="layer", ylabel="mean principal angle (°)", title="Subspace rotation, base → tuned")
    right.plot(layers, [row["matched_abs_cos_mean"] for row in rotation_by_layer], marker="o", label="matched |cos|")
    right.plot(layers, [row["word_overlap_mean"] for row in rotation_by_layer], marker="s", label="word overlap")
    right.set(xlabel="layer", ylim=(0, 1.02), title="Matched components")
    right.legend()
    return save_figure(figure, out / "ffn_rotation")


def plot_layer_groups(per_layer_group: list[dict[str, Any]], out: Path, heuristic: bool) -> list[Path]:
    """Figure 3: each category's share per eighth of the depth, base dashed and tuned solid."""
    paths = []
    groups = [entry["group"] for entry in per_layer_group]
    for key in ("tasks", "levels"):
        figure, (axis,) = subplots(1, width=7.0, height=4.0)
        for index, category in enumerate(per_layer_group[0][key]):
            color = f"C{index}"
            for model, style in (("base", "--"), ("tuned", "-")):
                values = [entry[key][category][model] for entry in per_layer_group]
                values = [float("nan") if v is None else v for v in values]
                axis.plot(groups, values, style, color=color, label=f"{category} ({model})")
        title = f"FFN concepts by layer group: {key}" + (" (HEURISTIC lexical labels)" if heuristic else "")
        axis.set(xlabel="layer group (eighths of depth)", ylabel="share of nameable concepts", title=title)
        axis.legend(fontsize=7, ncol=2)
        paths += save_figure(figure, out / f"ffn_{key}_by_layer_group")
    return paths


def write_figures(result: FfnResult, out: Path) -> list[Path]:
    """The figures of an `analyze_ffn` result under ``out``: the rotation, and Figure 3's with annotations."""
    paths = plot_rotation(result["rotation_by_layer"], out)
    if result["annotations"] is not None:
        paths += plot_layer_groups(result["per_layer_group"], out, result["annotations"]["heuristic"])
    return paths
