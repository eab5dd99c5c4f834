"""Instruction recognition (paper Tables 1–2, the position profile, and the nulls) from two attribution runs.

Per example: importance density of each prompt token (`shiftlens.density`), the instruction score over
the instruction mask, and a 10-bin position profile. Then, per group, under a protocol
(`shiftlens.evidence.PROTOCOLS`; every difference is listed in docs/protocols.md):

* **Table 1** (tuned run): followed (rating ≥ 2) vs unfollowed (0 < rating < 2) scores, ROC-AUC of the
  score predicting "followed", Cohen's d.
* **Table 2**: base vs tuned scores; the examples present in both runs are paired.

``"paper"`` follows the authors' code: Table 1 leaves out responses shorter than `min_response_tokens`,
Table 2 keeps every example (an empty response scores 0), standard deviations with ddof 0, one-sided
Welch tests (Table 1: unfollowed < followed; Table 2: base < tuned; the paired t-test beside it).
``"sound"`` leaves short responses out of both tables, uses ddof 1, two-sided permutation tests with
bootstrap intervals of the effect sizes, and puts every score beside its nulls
(`shiftlens.attribution.nulls`): Table 1's finding compares the instruction score beyond that
of length-matched control spans between followed and unfollowed responses, Table 2's is the tuned − base
gain of the instruction score beyond its control spans' (paired over examples); next to them the
instruction-minus-rest contrast and the gain by where the instruction sits (position-matched controls).
The raw scores' tests stay in the rows (paired first). In both, a comparison with
fewer than 5 values on a side or no variance is "not testable" (`shiftlens.evidence.untestable_reason`),
and the findings are Holm-adjusted together (`shiftlens.evidence.adjust`).

`analyze_instructions` reads two run directories, `analyze_records` takes their records (the paper's
released data, calibrations); both return an `InstructionsResult`. Per-example scores:
`shiftlens.analysis.instruction_scores`; table rows: `shiftlens.analysis.instruction_tables`; console,
CSV and figures: `shiftlens.analysis.instructions_output`.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from shiftlens import stats
from shiftlens.analysis import instruction_tables as tables
from shiftlens.analysis.instruction_scores import BINS, DEFAULT_PARAMS, ExampleScore, is_followed, score_example
from shiftlens.analysis.result import JSON_FILES, AnalysisResult
from shiftlens.attribution.records import ExampleAttribution, read_attribution_run
from shiftlens.density import DensityParams
from shiftlens.errors import ShiftlensError
from shiftlens.evidence import DEFAULT_PROTOCOL, MIN_RESPONSE_TOKENS, PROTOCOLS, Finding, adjust, check_protocol
from shiftlens.examples import check_coverage

KNOWN_GROUPS = ("self_instruct", "lima", "mt_bench")
ALL = "all"


@dataclass(frozen=True)
class InstructionsResult(AnalysisResult):
    """`analyze_instructions`'s result: Tables 1–2, the nulls (sound), the position profile and every score."""

    JSON_FILE: ClassVar[str] = JSON_FILES["instructions"]

    @property
    def table1(self) -> dict[str, dict[str, Any]]:
        """Per group: followed vs unfollowed scores of the tuned model, the protocol's tests and finding."""
        return self.data["table1"]

    @property
    def table2(self) -> dict[str, dict[str, Any]]:
        """Per group: base vs tuned scores, the protocol's tests and finding."""
        return self.data["table2"]

    @property
    def scores(self) -> list[dict[str, Any]]:
        """One row per example id: group, rating, base and tuned score."""
        return self.data["scores"]

    def save_files(self, out: Path) -> list[Path]:
        """One CSV per table and the figures (PNG + SVG) of the score distributions and the profile."""
        from shiftlens.analysis.instructions_output import write_files

        return write_files(self, out)


def _mean_profile(items: Iterable[ExampleScore]) -> list[float | None]:
    rows = [item.profile for item in items if not np.all(np.isnan(item.profile))]
    if not rows:
        return [None] * BINS
    stacked = np.vstack(rows)
    counts = (~np.isnan(stacked)).sum(axis=0)
    sums = np.nansum(stacked, axis=0)
    return [stats.finite(s / c) if c else None for s, c in zip(sums, counts)]


def _groups(*collections: Iterable[ExampleScore]) -> list[str]:
    present = {item.group for items in collections for item in items}
    return [g for g in KNOWN_GROUPS if g in present] + sorted(present - set(KNOWN_GROUPS)) + [ALL]


def _in_group(items: Iterable[Any], group: str) -> list[Any]:
    return [item for item in items if group == ALL or item.group == group]


def read_run(path: str | Path) -> tuple[dict[str, Any], list[ExampleAttribution]]:
    """An attribution run's manifest and records; a run of another kind or a bad record is a one-line error."""
    try:
        return read_attribution_run(path)
    except ValueError as exc:  # a run of another kind, or a record that does not fit its matrix
        raise ShiftlensError(str(exc)) from exc


def analyze_instructions(
    base_run: str | Path,
    tuned_run: str | Path,
    ratings: dict[str, float] | None = None,
    *,
    params: DensityParams = DEFAULT_PARAMS,
    min_response_tokens: int = MIN_RESPONSE_TOKENS,
    protocol: str = DEFAULT_PROTOCOL,
    seed: int = 0,
) -> InstructionsResult:
    """`analyze_records` of two attribution run directories, with ``runs``: each run's path and failed examples."""
    check_protocol(protocol)
    (base_manifest, base), (tuned_manifest, tuned) = read_run(base_run), read_run(tuned_run)
    result = analyze_records(
        base, tuned, ratings, params=params, min_response_tokens=min_response_tokens, protocol=protocol, seed=seed
    )
    return result.extended(runs=runs_entry({"base": base_run, "tuned": tuned_run}, (base_manifest, tuned_manifest)))


def runs_entry(paths: dict[str, str | Path], manifests: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """The result's ``runs``: per role (base, tuned) the run's path and the ids of its failed examples."""
    return {
        role: {"path": str(path), "failed": sorted(manifest.get("failed") or {})}
        for (role, path), manifest in zip(paths.items(), manifests, strict=True)
    }


def analyze_records(
    base_records: Sequence[ExampleAttribution],
    tuned_records: Sequence[ExampleAttribution],
    ratings: dict[str, float] | None = None,
    *,
    params: DensityParams = DEFAULT_PARAMS,
    min_response_tokens: int = MIN_RESPONSE_TOKENS,
    protocol: str = DEFAULT_PROTOCOL,
    seed: int = 0,
    masks: dict[str, np.ndarray] | None = None,
) -> InstructionsResult:
    """Tables 1–2, the position profile and (sound protocol) the nulls of a base and a tuned run's records.

    `ratings` (example id → rating of the tuned response) override the tuned records' own ratings;
    `masks` (example id → instruction mask) override both records' masks (used by the calibration).
    Keys: protocol, table1, table2, nulls (sound only), finding (Holm-adjusted `Finding.to_json()` list),
    position_profile, position_profile_by_group, scores (one row per example id), excluded, params.
    """
    check_protocol(protocol)
    if ratings is not None:
        check_coverage([r.id for r in tuned_records], ratings)
    ratings, masks = ratings or {}, masks or {}
    base_all = [score_example(r, params, mask=masks.get(r.id)) for r in base_records]
    tuned_all = [score_example(r, params, ratings.get(r.id), masks.get(r.id)) for r in tuned_records]
    short = {
        name: sorted(item.id for item in items if item.n_response < min_response_tokens)
        for name, items in (("base", base_all), ("tuned", tuned_all))
    }
    base = [item for item in base_all if item.n_response >= min_response_tokens]
    tuned = [item for item in tuned_all if item.n_response >= min_response_tokens]
    ddof = 0 if protocol == "paper" else 1
    groups = _groups(base_all, tuned_all)
    located: list[tuple[tuple[str, ...], Finding]] = []
    table1, table2 = {}, {}
    for g in groups:
        if _in_group(tuned, g):
            table1[g], finding = tables.table1_row(_in_group(tuned, g), g, protocol, ddof, seed)
            located.append((("table1", g) if protocol == "paper" else ("table1", g, "control"), finding))
    result: dict[str, Any] = {"protocol": protocol, "protocol_description": PROTOCOLS[protocol]}
    if protocol == "paper":
        for g in groups:
            table2[g], finding = tables.table2_paper(_in_group(base_all, g), _in_group(tuned_all, g), g)
            located.append((("table2", g), finding))
    else:
        null, left_out = tables.paired_null_stats(base, tuned)
        for g in groups:
            table2[g], finding = tables.table2_sound(
                _in_group(base, g), _in_group(tuned, g), _in_group(null, g), g, seed
            )
            located.append((("table2", g, "control"), finding))
        result["nulls"], null_findings = tables.nulls_section(null, left_out, seed)
        located += [(("nulls", *path), f) for path, f in null_findings]
    adjusted = adjust([f for _, f in located])
    sections = {"table1": table1, "table2": table2, "nulls": result.get("nulls")}
    for (path, _), finding in zip(located, adjusted):
        target = sections[path[0]]
        for key in path[1:]:
            target = target[key]
        target["p_adjusted"] = stats.finite(finding.p_adjusted)
        target["significant"] = finding.significant
    profiles = {
        g: {"base": _mean_profile(_in_group(base, g)), "tuned": _mean_profile(_in_group(tuned, g))} for g in groups
    }
    result.update(
        table1=table1,
        table2=table2,
        finding=[f.to_json() for f in adjusted],
        position_profile=profiles[ALL],
        position_profile_by_group={g: p for g, p in profiles.items() if g != ALL},
        scores=_score_rows(base if protocol == "sound" else base_all, tuned if protocol == "sound" else tuned_all),
        excluded={
            "min_response_tokens": min_response_tokens,
            "short_response": short,
            "short_response_in_table2": protocol == "paper",
            "unrated": sorted(item.id for item in tuned if is_followed(item.rating) is None),
        },
        params={
            "levels": params.levels,
            "threshold": params.threshold,
            "p": params.p,
            "bins": BINS,
            "ddof": ddof,
            "seed": seed,
        },
    )
    return InstructionsResult(result)


def _score_rows(base: list[ExampleScore], tuned: list[ExampleScore]) -> list[dict[str, Any]]:
    rows: dict[str, dict[str, Any]] = {}
    for name, items in (("base", base), ("tuned", tuned)):
        for item in items:
            row = rows.setdefault(item.id, {"id": item.id, "group": item.group, "rating": None, "base": None})
            row[name] = item.score
            if name == "tuned":
                row["rating"] = stats.finite(item.rating)
    for row in rows.values():
        row.setdefault("tuned", None)
    return sorted(rows.values(), key=lambda row: (row["group"], row["id"]))
