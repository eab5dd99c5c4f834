"""The diff step of `compare` (issue 17): on the responses compare explains, its own identity, --no-diff."""

from __future__ import annotations

import json
import re
from dataclasses import replace
from pathlib import Path

import pyarrow.parquet as pq

from shiftlens import organism
from shiftlens.attribution.records import read_attribution_run
from shiftlens.attribution.settings import AttributionSettings
from shiftlens.compare import CompareSettings, compare

SMALL = CompareSettings(
    methods=("attribution",),
    null_draws=0,
    annotator=None,
    attribution=AttributionSettings(limit=2, max_new_tokens=6),
)


def _run(out: Path, settings: CompareSettings) -> list[str]:
    messages: list[str] = []
    compare("organism-base", "organism-tuned", organism.prompts_path(), organism.vocab_path(), out, settings,
            messages.append)  # fmt: skip
    return messages


def _mtimes(folder: Path) -> dict[Path, int]:
    return {p: p.stat().st_mtime_ns for p in folder.glob("units/*")}


def test_the_diff_step_reads_the_explained_responses_and_redoes_only_itself(tmp_path) -> None:
    out = tmp_path / "cmp"
    _run(out, SMALL)
    weights = pq.read_table(out / "diff" / "weights.parquet").to_pydict()
    assert {"q", "k", "v", "o", "embed"} <= set(weights["module"]) and max(weights["rel_frobenius"]) > 0
    explained = {r.id: r for r in read_attribution_run(out / "attribution" / "tuned")[1]}
    tokens = pq.read_table(out / "diff" / "tokens" / "tokens.parquet").to_pydict()
    assert set(tokens["id"]) == set(explained)
    for example_id, record in explained.items():  # the same response tokens the attribution explains
        assert [t for i, t in zip(tokens["id"], tokens["token"]) if i == example_id] == record.response_tokens
    results = json.loads((out / "results.json").read_text())
    assert results["diff"]["modules"] and results["diff"]["tokens"]["examples"] == 2
    assert "kl_null" not in tokens  # no null draws: no null here either
    report = (out / "report.html").read_text()
    linked = set(re.findall(r'class="sl-example-link" data-example="([^"]+)"', report))
    assert linked and linked <= set(explained)

    attribution = _mtimes(out / "attribution" / "tuned")
    messages = _run(out, replace(SMALL, null_draws=2))  # the diff's null is on: only the diff is redone
    assert any(m.startswith("diff: settings changed") for m in messages)
    assert not any(m.startswith("[") for m in messages)  # no method step ran
    assert _mtimes(out / "attribution" / "tuned") == attribution
    tokens = pq.read_table(out / "diff" / "tokens" / "tokens.parquet").to_pydict()
    assert min(tokens["kl_null"]) >= 0 and max(tokens["kl_null"]) > 0
    assert json.loads((out / "results.json").read_text())["diff"]["finding"][0]["method"] == "diff"
    again = _run(out, replace(SMALL, null_draws=2))
    assert not any(m.startswith("diff") for m in again)  # finished: resumed, not rerun


def test_no_diff_skips_the_step_and_the_section_says_so(tmp_path) -> None:
    out = tmp_path / "cmp"
    _run(out, replace(SMALL, diff=False))
    assert not (out / "diff").exists()
    assert json.loads((out / "results.json").read_text())["diff"] is None
    assert "The diff step (where tuning acted) not run" in (out / "report.html").read_text()


def test_the_kl_finding_is_tested_against_its_null_and_guarded() -> None:
    from shiftlens.diff.results import kl_finding

    above = [{"mean_kl": 0.5 + i / 10, "mean_kl_null": 0.1 + i / 100} for i in range(8)]
    shown = kl_finding(above)
    assert shown["testable"] and shown["p_adjusted"] == shown["p_value"] < 0.05 and shown["effect_size"] > 0
    assert not kl_finding(above[:3])["testable"] and "n = 3 < 5" in kl_finding(above[:3])["reason"]
    same = [{"mean_kl": e["mean_kl_null"], "mean_kl_null": e["mean_kl_null"]} for e in above]
    assert not kl_finding(same)["testable"]  # no difference at all: zero variance, no p-value
