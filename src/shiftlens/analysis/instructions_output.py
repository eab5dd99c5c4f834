"""Console tables, CSV files and figures of an instruction-analysis result (`analyze_instructions`)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from rich.console import Console

from shiftlens import plots
from shiftlens.analysis.instruction_scores import is_followed
from shiftlens.tables import print_table, write_csv

if TYPE_CHECKING:
    from shiftlens.analysis.instructions import InstructionsResult


def _flatten(entry: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested fields as flat CSV columns: ``{"base": {"mean": 1}}`` → ``base_mean``; ``ci`` → ``ci_low/high``."""
    flat: dict[str, Any] = {}
    for key, value in entry.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(_flatten(value, f"{name}_"))
        elif isinstance(value, list) and len(value) == 2:
            flat[f"{name}_low"], flat[f"{name}_high"] = value
        else:
            flat[name] = value
    return flat


def _flat_table(table: dict[str, dict[str, Any]], key: str = "group") -> tuple[list[str], list[list[Any]]]:
    flat = {name: _flatten(entry) for name, entry in table.items()}
    columns = [key] + list(dict.fromkeys(column for row in flat.values() for column in row))
    return columns, [[name, *(row.get(c) for c in columns[1:])] for name, row in flat.items()]


def table_rows(result: dict[str, Any]) -> dict[str, tuple[Sequence[str], list[list[Any]]]]:
    """Tables 1–2, the nulls (sound protocol), findings and the position profile as (columns, rows)."""
    profile_rows = [
        [group, model, *values]
        for group, profile in {
            "all": result["position_profile"],
            **result["position_profile_by_group"],
        }.items()
        for model, values in profile.items()
    ]
    score_columns = ("id", "group", "rating", "base", "tuned")
    tables = {
        "table1": _flat_table(result["table1"]),
        "table2": _flat_table(result["table2"]),
        "position_profile": (
            ("group", "model", *(f"decile_{i}" for i in range(len(result["position_profile"]["base"])))),
            profile_rows,
        ),
        "scores": (score_columns, [[row[c] for c in score_columns] for row in result["scores"]]),
    }
    if result["finding"]:
        finding_columns = list(_flatten(result["finding"][0]))
        tables["findings"] = (finding_columns, [list(_flatten(f).values()) for f in result["finding"]])
    nulls = result.get("nulls")
    if nulls:
        tables["nulls"] = _flat_table({"contrast": nulls["contrast"], **nulls["strata"]}, "null")
    return tables


def _mean_std(entry: dict[str, Any]) -> str:
    if entry["mean"] is None:
        return f"— ({entry['n']})"
    std = "—" if entry["std"] is None else f"{entry['std']:.3f}"
    return f"{entry['mean']:.3f} ± {std} ({entry['n']})"


def _p(value: float | None) -> str:
    return "—" if value is None else f"{value:.2g}"


def _tested(entry: dict[str, Any], key: str = "p_value") -> str:
    """A p-value, or "not testable (reason)" where the guard refused the data."""
    reason = entry.get(f"{key.removesuffix('p_value')}reason")
    return f"not testable ({reason})" if reason else _p(entry.get(key))


def _d(value: float | None, ci: list[float | None] | None = None) -> str:
    if value is None:
        return "—"
    if ci and None not in ci:
        return f"{value:+.2f} [{ci[0]:+.2f}, {ci[1]:+.2f}]"
    return f"{value:+.2f}"


def _table1_printed(result: dict[str, Any]) -> tuple[tuple[str, ...], list[list[Any]]]:
    table = result["table1"]
    if result["protocol"] == "paper":
        columns = ("group", "followed", "unfollowed", "p (Welch, 1-sided)", "p adj.", "AUC", "d")
        rows = [
            [g, _mean_std(r["followed"]), _mean_std(r["unfollowed"]), _tested(r), _p(r.get("p_adjusted")),
             _p(r["auc"]), _d(r["effect_size"])]
            for g, r in table.items()
        ]  # fmt: skip
        return columns, rows
    columns = (
        "group", "followed", "unfollowed", "p", "AUC", "beyond controls: followed / unfollowed", "p vs controls",
        "p adj.", "d [95% CI]",
    )  # fmt: skip
    rows = []
    for g, r in table.items():
        c = r["control"]
        beyond = f"{_mean(c['followed'])} ({c['followed']['n']}) / {_mean(c['unfollowed'])} ({c['unfollowed']['n']})"
        rows.append(
            [g, _mean_std(r["followed"]), _mean_std(r["unfollowed"]), _tested(r), _p(r["auc"]), beyond, _tested(c),
             _p(c.get("p_adjusted")), _d(c["effect_size"], c["ci"])]
        )  # fmt: skip
    return columns, rows


def _table2_printed(result: dict[str, Any]) -> tuple[tuple[str, ...], list[list[Any]]]:
    table = result["table2"]
    if result["protocol"] == "paper":
        columns = ("group", "base", "tuned", "p (Welch, 1-sided)", "p adj.", "p (paired t, 1-sided)", "pairs", "d")
        rows = [
            [g, _mean_std(r["base"]), _mean_std(r["tuned"]), _tested(r), _p(r.get("p_adjusted")),
             _tested(r, "paired_p_value"), r["n_paired"], _d(r["effect_size"])]
            for g, r in table.items()
        ]  # fmt: skip
        return columns, rows
    columns = (
        "group", "base", "tuned", "p paired", "gain instr. / control (n)", "p vs control", "p adj.", "d_z [95% CI]",
    )  # fmt: skip
    rows = []
    for g, r in table.items():
        c = r["control"]
        gains = f"{_mean(c['instruction_gain'])} / {_mean(c['control_gain'])} ({c['n']})"
        rows.append(
            [g, _mean_std(r["base"]), _mean_std(r["tuned"]), _tested(r, "paired_p_value"), gains, _tested(c),
             _p(c.get("p_adjusted")), _d(c["effect_size"], c["ci"])]
        )  # fmt: skip
    return columns, rows


def _mean(entry: dict[str, Any]) -> str:
    return "—" if entry["mean"] is None else f"{entry['mean']:+.3f}"


def print_tables(result: dict[str, Any], console: Console | None = None) -> None:
    """Print Table 1, Table 2, the nulls, the findings and the position profile (mean ± std (n) cells)."""
    protocol = result["protocol"]
    columns, rows = _table1_printed(result)
    print_table(
        f"Table 1 · tuned model: instruction score of followed vs unfollowed responses ({protocol} protocol)",
        columns,
        rows,
        console,
    )
    columns, rows = _table2_printed(result)
    print_table(f"Table 2 · instruction score, base vs tuned ({protocol} protocol)", columns, rows, console)
    nulls = result.get("nulls")
    if nulls:
        entries = {"contrast (instruction − rest)": nulls["contrast"], **nulls["strata"]}
        print_table(
            f"Nulls · {nulls['n']} examples with control spans (every rotation of the instruction; "
            f"{len(nulls['left_out']['no_control_span'])} whose instruction is the whole prompt left out)",
            ("test", "n", "base / tuned or instruction / control gain", "p", "p adj.", "d_z [95% CI]"),
            [
                [
                    name,
                    e.get("n", e.get("base", {}).get("n")),
                    f"{_mean(e['base'])} / {_mean(e['tuned'])}"
                    if "base" in e
                    else f"{_mean(e['instruction_gain'])} / {_mean(e['control_gain'])}",
                    _tested(e),
                    _p(e.get("p_adjusted")),
                    _d(e["effect_size"], e["ci"]),
                ]
                for name, e in entries.items()
            ],  # fmt: skip
            console,
        )
    print_table(
        f"Findings · {protocol} protocol, Holm-adjusted over the {len(result['finding'])} below",
        ("claim", "p adj.", "finding"),
        [
            [
                f["claim"],
                _p(f["p_adjusted"]) if f["testable"] else f"not testable ({f['reason']})",
                "yes" if f["significant"] else "no",
            ]
            for f in result["finding"]
        ],  # fmt: skip
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


def write_files(result: InstructionsResult, out: str | Path) -> list[Path]:
    """Write one CSV per table and the figures (PNG + SVG) under `out` (the JSON: `InstructionsResult.save`)."""
    out = Path(out)
    paths = []
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
