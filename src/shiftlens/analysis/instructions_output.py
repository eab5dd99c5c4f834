"""Console tables, CSV files, figures and JSON for an instruction-analysis result (`analyze_instructions`)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from rich.console import Console

from shiftlens import plots
from shiftlens.analysis.instructions import is_followed
from shiftlens.storage import atomic_write_json
from shiftlens.tables import print_table, write_csv

TABLE1_COLUMNS = (
    "group", "followed_mean", "followed_std", "followed_n", "unfollowed_mean", "unfollowed_std", "unfollowed_n",
    "p_value", "auc", "effect_size",
)  # fmt: skip
TABLE2_COLUMNS = (
    "group", "base_mean", "base_std", "base_n", "tuned_mean", "tuned_std", "tuned_n", "p_value", "paired_p_value",
    "n_paired", "effect_size", "paired_effect_size",
)  # fmt: skip


def _flat_rows(table: dict[str, dict[str, Any]], columns: Sequence[str]) -> list[list[Any]]:
    rows = []
    for group, entry in table.items():
        row: list[Any] = [group]
        for column in columns[1:]:
            side, _, stat = column.partition("_")
            nested = entry.get(side)
            row.append(nested.get(stat) if isinstance(nested, dict) and stat in nested else entry.get(column))
        rows.append(row)
    return rows


def table_rows(result: dict[str, Any]) -> dict[str, tuple[Sequence[str], list[list[Any]]]]:
    """Tables 1–2 and the position profile as (columns, rows), ready for the console or CSV."""
    profile_rows = [
        [group, model, *values]
        for group, profile in {
            "all": result["position_profile"],
            **result["position_profile_by_group"],
        }.items()
        for model, values in profile.items()
    ]
    score_columns = ("id", "group", "rating", "base", "tuned")
    return {
        "table1": (TABLE1_COLUMNS, _flat_rows(result["table1"], TABLE1_COLUMNS)),
        "table2": (TABLE2_COLUMNS, _flat_rows(result["table2"], TABLE2_COLUMNS)),
        "position_profile": (
            ("group", "model", *(f"decile_{i}" for i in range(len(result["position_profile"]["base"])))),
            profile_rows,
        ),
        "scores": (score_columns, [[row[c] for c in score_columns] for row in result["scores"]]),
    }


def _mean_std(entry: dict[str, Any]) -> str:
    if entry["mean"] is None:
        return f"— ({entry['n']})"
    std = "—" if entry["std"] is None else f"{entry['std']:.3f}"
    return f"{entry['mean']:.3f} ± {std} ({entry['n']})"


def _p(value: float | None) -> str:
    return "—" if value is None else f"{value:.2g}"


def _d(value: float | None) -> str:
    return "—" if value is None else f"{value:+.2f}"


def print_tables(result: dict[str, Any], console: Console | None = None) -> None:
    """Print Table 1, Table 2 and the position profile compactly (mean ± std (n) cells)."""
    print_table(
        "Table 1 · tuned model: instruction score of followed vs unfollowed responses",
        ("group", "followed", "unfollowed", "p (Welch, 1-sided)", "AUC", "d"),
        [
            [
                g,
                _mean_std(r["followed"]),
                _mean_std(r["unfollowed"]),
                _p(r["p_value"]),
                _p(r["auc"]),
                _d(r["effect_size"]),
            ]
            for g, r in result["table1"].items()
        ],
        console,
    )
    print_table(
        "Table 2 · instruction score, base vs tuned",
        ("group", "base", "tuned", "p (Welch, 1-sided)", "p (paired, 1-sided)", "pairs", "d"),
        [
            [
                g,
                _mean_std(r["base"]),
                _mean_std(r["tuned"]),
                _p(r["p_value"]),
                _p(r["paired_p_value"]),
                r["n_paired"],
                _d(r["effect_size"]),
            ]
            for g, r in result["table2"].items()
        ],
        console,
    )
    columns, rows = table_rows(result)["position_profile"]
    print_table(
        "Mean max-normalised importance density by prompt-position decile",
        ("group", "model", *(str(i + 1) for i in range(len(columns) - 2))),
        [row[:2] + ["—" if v is None else f"{v:.2f}" for v in row[2:]] for row in rows],
        console,
    )


def _score_lists(result: dict[str, Any], group: str) -> dict[str, list[float]]:
    rows = [r for r in result["scores"] if group == "all" or r["group"] == group]
    labelled = [(r["tuned"], is_followed(r["rating"])) for r in rows if r["tuned"] is not None]
    return {
        "base": [r["base"] for r in rows if r["base"] is not None],
        "tuned": [r["tuned"] for r in rows if r["tuned"] is not None],
        "followed": [score for score, label in labelled if label],
        "unfollowed": [score for score, label in labelled if label is False],
    }


def _distribution_figure(result: dict[str, Any], pair: tuple[str, str], colors: tuple[str, str], stem: Path) -> list:
    groups = list(result["table2"])
    fig, axes = plots.subplots(len(groups), sharey=False)
    for ax, group in zip(axes, groups):
        lists = _score_lists(result, group)
        values = [v for name in pair for v in lists[name]]
        bins = np.histogram_bin_edges(values or [0.0, 1.0], bins=20)
        for name, color in zip(pair, colors):
            ax.hist(
                lists[name],
                bins=bins,
                histtype="step",
                linewidth=1.6,
                color=color,
                label=f"{name} (n={len(lists[name])})",
            )
        ax.set_title(group)
        ax.set_xlabel("instruction score")
        ax.legend(fontsize=8)
    axes[0].set_ylabel("examples")
    return plots.save_figure(fig, stem)


def _profile_figure(result: dict[str, Any], stem: Path) -> list:
    profiles = {"all": result["position_profile"], **result["position_profile_by_group"]}
    fig, axes = plots.subplots(len(profiles), sharey=True)
    for ax, (group, profile) in zip(axes, profiles.items()):
        for model, color in (("base", plots.BASE_COLOR), ("tuned", plots.TUNED_COLOR)):
            values = np.array([np.nan if v is None else v for v in profile[model]], dtype=float)
            ax.plot((np.arange(values.size) + 0.5) / values.size, values, marker="o", color=color, label=model)
        ax.set_title(group)
        ax.set_xlabel("relative position in prompt")
        ax.legend(fontsize=8)
    axes[0].set_ylabel("mean normalised density")
    return plots.save_figure(fig, stem)


def write_outputs(result: dict[str, Any], out: str | Path) -> list[Path]:
    """Write result.json, one CSV per table, and the figures (PNG + SVG) under `out`; return the paths."""
    out = Path(out)
    atomic_write_json(out / "result.json", result)
    paths = [out / "result.json"]
    for name, (columns, rows) in table_rows(result).items():
        paths.append(write_csv(out / f"{name}.csv", columns, rows))
    figures = out / "figures"
    paths += _distribution_figure(
        result, ("base", "tuned"), (plots.BASE_COLOR, plots.TUNED_COLOR), figures / "scores_base_vs_tuned"
    )
    if result["table1"]:
        paths += _distribution_figure(
            result,
            ("followed", "unfollowed"),
            ("#55A868", "#C44E52"),
            figures / "scores_followed_vs_unfollowed",
        )
    paths += _profile_figure(result, figures / "position_profile")
    return paths
