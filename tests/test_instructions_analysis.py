"""Instruction analysis: literal references, planted signals, exclusions, outputs and the CLI."""

from __future__ import annotations

import io
import json
import math

import numpy as np
import pytest
from rich.console import Console
from scipy import stats as scipy_stats

from shiftlens import stats
from shiftlens.analysis.instruction_scores import is_followed, position_profile, score_example
from shiftlens.analysis.instructions import analyze_records
from shiftlens.analysis.instructions_output import print_tables
from shiftlens.attribution import nulls
from shiftlens.attribution.records import ExampleAttribution, write_example
from shiftlens.cli.main import main
from shiftlens.density import importance_density, instruction_score
from shiftlens.errors import ShiftlensError
from shiftlens.storage import RunDirectory

GROUP_PREFIX = {
    "self_instruct": "user_oriented_task_",
    "lima": "lima_author_",
    "mt_bench": "mtbench_writing_",
}


def make_record(
    example_id: str,
    rng: np.random.Generator,
    *,
    focus: float,
    n: int = 20,
    m: int = 8,
    rating: float | None = None,
    group: str | None = None,
    hot_rows: slice = slice(0, 5),
) -> ExampleAttribution:
    """A random attribution matrix with `focus` extra weight planted on the instruction rows `hot_rows`."""
    matrix = rng.random((n, m)).astype(np.float32)
    matrix[hot_rows] += focus
    mask = np.zeros(n, dtype=bool)
    mask[hot_rows] = True
    return record_from(example_id, matrix, mask, rating, group)


def planted_runs(seed: int = 0, per_group: int = 15):
    """Base runs with no instruction focus, tuned with a strong one; ratings follow the tuned focus."""
    rng = np.random.default_rng(seed)
    base, tuned = [], []
    for prefix in GROUP_PREFIX.values():
        for i in range(per_group):
            followed = i % 3 != 0
            base.append(make_record(f"{prefix}{i}", rng, focus=0.0))
            rating = 4.0 if followed else 1.0
            tuned.append(make_record(f"{prefix}{i}", rng, focus=3.0 if followed else 0.0, rating=rating))
    return base, tuned


def literal_profile(density: np.ndarray) -> list[float]:
    """Token by token: position (n + 0.5) / N scaled to 10 bins, mean of density / max per bin."""
    sums, counts = [0.0] * 10, [0] * 10
    for n, value in enumerate(density):
        b = int((n + 0.5) / len(density) * 10)
        sums[b] += value / max(density)
        counts[b] += 1
    return [s / c if c else math.nan for s, c in zip(sums, counts)]


@pytest.mark.parametrize("n", [1, 7, 10, 23, 100])
def test_position_profile_matches_literal_binning(n):
    density = np.random.default_rng(n).random(n) + 0.1
    np.testing.assert_allclose(position_profile(density), literal_profile(density), equal_nan=True)
    assert np.all(np.isnan(position_profile(np.zeros(5))))


def test_score_example_uses_density_and_group_from_id():
    record = make_record("lima_author_3", np.random.default_rng(1), focus=1.0)
    item = score_example(record)
    density = importance_density(record.attribution)
    assert item.group == "lima" and item.n_response == 8
    assert item.score == instruction_score(density, np.array(record.instruction_mask))
    assert score_example(make_record("lima_author_3", np.random.default_rng(1), focus=1, group="custom")).group == (
        "custom"
    )


@pytest.mark.parametrize("rating,label", [(None, None), (-1, None), (0, None), (1, False), (1.5, False), (2, True)])
def test_followed_rule(rating, label):
    assert is_followed(rating) is label


def test_tables_equal_statistics_of_literal_scores():
    """Paper protocol: population standard deviations, one-sided Welch and paired t-tests, as the authors."""
    base, tuned = planted_runs()
    result = analyze_records(base, tuned, protocol="paper")
    assert result["protocol"] == "paper" and result["params"]["ddof"] == 0
    scores = {
        name: {
            r.id: instruction_score(importance_density(r.attribution), np.array(r.instruction_mask)) for r in records
        }
        for name, records in (("base", base), ("tuned", tuned))
    }
    ratings = {r.id: r.rating for r in tuned}
    for group, prefix in GROUP_PREFIX.items():
        ids = [i for i in scores["base"] if i.startswith(prefix)]
        b, t = [scores["base"][i] for i in ids], [scores["tuned"][i] for i in ids]
        row = result["table2"][group]
        assert row["base"] == pytest.approx({"mean": np.mean(b), "std": np.std(b), "n": len(b)})
        assert row["tuned"] == pytest.approx({"mean": np.mean(t), "std": np.std(t), "n": len(t)})
        assert row["p_value"] == pytest.approx(scipy_stats.ttest_ind(b, t, equal_var=False, alternative="less").pvalue)
        assert row["paired_p_value"] == pytest.approx(scipy_stats.ttest_rel(b, t, alternative="less").pvalue)
        assert row["effect_size"] == pytest.approx(stats.cohens_d(b, t)) and row["n_paired"] == len(ids)
        followed = [scores["tuned"][i] for i in ids if ratings[i] >= 2]
        unfollowed = [scores["tuned"][i] for i in ids if ratings[i] < 2]
        row1 = result["table1"][group]
        assert row1["followed"] == pytest.approx(stats.summary(followed, ddof=0))
        assert row1["unfollowed"] == pytest.approx(stats.summary(unfollowed, ddof=0))
        assert row1["p_value"] == pytest.approx(stats.welch_less(unfollowed, followed))
        labels = [ratings[i] >= 2 for i in ids]
        assert row1["auc"] == pytest.approx(stats.roc_auc([scores["tuned"][i] for i in ids], labels))


def test_planted_signal_is_found_and_json_has_the_documented_shape():
    base, tuned = planted_runs()
    result = json.loads(json.dumps(analyze_records(base, tuned).to_json(), allow_nan=False))
    for group in GROUP_PREFIX:
        t1, t2 = result["table1"][group], result["table2"][group]
        assert set(t1) >= {"followed", "unfollowed", "p_value", "auc"}
        assert set(t2) >= {"base", "tuned", "p_value", "paired_p_value", "effect_size"}
        assert set(t1["followed"]) == {"mean", "std", "n"} and t1["followed"]["n"] == 10
        assert t1["auc"] > 0.9 and t1["p_value"] < 0.05
        assert t2["tuned"]["mean"] > t2["base"]["mean"] and t2["p_value"] < 0.05 and t2["paired_p_value"] < 0.05
    assert set(result["position_profile"]) == {"base", "tuned"} and len(result["position_profile"]["tuned"]) == 10
    assert set(result["position_profile_by_group"]) == set(GROUP_PREFIX)
    assert len(result["scores"]) == 45 and result["table2"]["all"]["base"]["n"] == 45


def test_position_profile_finds_planted_positions():
    rng = np.random.default_rng(3)
    base = [make_record(f"lima_author_{i}", rng, focus=5.0, hot_rows=slice(18, 20)) for i in range(6)]
    tuned = [make_record(f"lima_author_{i}", rng, focus=5.0, hot_rows=slice(0, 2)) for i in range(6)]
    profile = analyze_records(base, tuned)["position_profile"]
    assert int(np.argmax(profile["tuned"])) == 0 and int(np.argmax(profile["base"])) == 9


def test_exclusions_and_rating_override():
    rng = np.random.default_rng(2)
    tuned = [
        make_record("lima_author_0", rng, focus=1.0, rating=4),
        make_record("lima_author_1", rng, focus=0.0, rating=1),
        make_record("lima_author_2", rng, focus=0.0, rating=-1),  # unrated
        make_record("lima_author_3", rng, focus=0.0, rating=None),  # unrated
        make_record("lima_author_4", rng, focus=1.0, rating=3, m=4),  # response too short
        make_record("lima_author_5", rng, focus=1.0, rating=2),
    ]
    base = [make_record(f"lima_author_{i}", rng, focus=0.0, m=3 if i == 0 else 8) for i in range(6)]
    result = analyze_records(base, tuned)
    t1 = result["table1"]["lima"]
    assert (t1["followed"]["n"], t1["unfollowed"]["n"]) == (2, 1)
    assert result["excluded"]["short_response"] == {"base": ["lima_author_0"], "tuned": ["lima_author_4"]}
    assert result["excluded"]["unrated"] == ["lima_author_2", "lima_author_3"]
    t2 = result["table2"]["lima"]
    assert (t2["base"]["n"], t2["tuned"]["n"], t2["n_paired"]) == (5, 5, 4)
    overridden = analyze_records(base, tuned, {"lima_author_0": 1, "lima_author_2": 2})["table1"]["lima"]
    assert (overridden["followed"]["n"], overridden["unfollowed"]["n"]) == (2, 2)


def write_run(path, records):
    with RunDirectory(path, "attribution", params={}, info={}) as run:
        for record in records:
            write_example(run, record)


def test_cli_writes_tables_figures_and_json(tmp_path, capsys):
    base, tuned = planted_runs(per_group=6)
    write_run(tmp_path / "base", base)
    write_run(tmp_path / "tuned", tuned)
    out, json_path = tmp_path / "out", tmp_path / "result.json"
    argv = ["analyze", "instructions", str(tmp_path / "base"), str(tmp_path / "tuned"), "--out", str(out)]
    assert main([*argv, "--json", str(json_path)]) == 0
    result = json.loads(json_path.read_text())
    assert result == json.loads((out / "result.json").read_text())
    assert result["table2"]["lima"]["base"]["n"] == 6
    for name in ("table1", "table2", "position_profile", "scores"):
        assert (out / f"{name}.csv").read_text().count("\n") > 3
    for stem in ("scores_base_vs_tuned", "scores_followed_vs_unfollowed", "position_profile"):
        assert (out / "figures" / f"{stem}.png").stat().st_size > 1000
        assert (out / "figures" / f"{stem}.svg").read_text().lstrip().startswith("<?xml")
    assert "Table 1" in capsys.readouterr().out
    assert result["protocol"] == "sound" and result["finding"] and (out / "findings.csv").exists()
    assert (out / "nulls.csv").read_text().splitlines()[0].startswith("null,")
    paper_json = tmp_path / "paper.json"
    assert main([*argv[:4], "--protocol", "paper", "--json", str(paper_json)]) == 0
    paper = json.loads(paper_json.read_text())
    assert paper["protocol"] == "paper" and "nulls" not in paper and paper["params"]["ddof"] == 0


def test_cli_unknown_protocol_is_a_one_line_error(tmp_path, capsys):
    with pytest.raises(SystemExit) as info:
        main(["analyze", "instructions", str(tmp_path / "a"), str(tmp_path / "b"), "--protocol", "papr"])
    assert info.value.code == 2 and "invalid choice: 'papr'" in capsys.readouterr().err
    with pytest.raises(ShiftlensError, match="unknown protocol 'papr'"):
        analyze_records([], [], protocol="papr")


def test_cli_bad_run_directory_is_a_one_line_error(tmp_path, capsys):
    base, tuned = planted_runs(per_group=2)
    write_run(tmp_path / "base", base)
    assert main(["analyze", "instructions", str(tmp_path / "base"), str(tmp_path / "missing")]) == 2
    assert "missing" in capsys.readouterr().err


def test_cli_joins_ratings_file_and_lists_failed_examples(tmp_path):
    base, tuned = planted_runs(per_group=3)
    for record in tuned:
        record.rating = None
    write_run(tmp_path / "base", base)
    write_run(tmp_path / "tuned", tuned)
    with RunDirectory(tmp_path / "tuned", "attribution", params={}) as run:
        run.update_manifest(failed={"lima_author_99": "too long"})
    header = "File\tModel\tPrompt\tReference\tInstruct\tResponse\tRating\n"
    lines = [f"{r.id}.pkl\tvicuna_7B\tp\tr\ti\tx\t{4 if i % 2 else 1}\n" for i, r in enumerate(tuned)]
    lines.append(f"{tuned[0].id}.pkl\talpaca_7B\tp\tr\ti\tx\t-1\n")
    (tmp_path / "ratings.tsv").write_text(header + "".join(lines))
    json_path = tmp_path / "r.json"
    argv = ["analyze", "instructions", str(tmp_path / "base"), str(tmp_path / "tuned")]
    argv += ["--ratings", str(tmp_path / "ratings.tsv"), "--ratings-model", "vicuna_7B", "--json", str(json_path)]
    assert main(argv) == 0
    result = json.loads(json_path.read_text())
    assert result["table1"]["all"]["followed"]["n"] == 4 and result["table1"]["all"]["unfollowed"]["n"] == 5
    assert result["runs"]["tuned"]["failed"] == ["lima_author_99"] and result["runs"]["base"]["failed"] == []


def record_from(example_id, matrix, mask, rating=None, group=None):
    """A record with the given attribution matrix and instruction mask."""
    n, m = matrix.shape
    return ExampleAttribution(
        id=example_id,
        prompt="p" * n,
        response="r" * m,
        prompt_tokens=["p"] * n,
        prompt_offsets=[(i, i + 1) for i in range(n)],
        response_tokens=["r"] * m,
        response_offsets=[(j, j + 1) for j in range(m)],
        instruction_mask=list(map(bool, mask)),
        attribution=matrix.astype(np.float32),
        group=group,
        rating=rating,
    )


@pytest.mark.parametrize("protocol", ["paper", "sound"])
def test_degenerate_cells_are_not_testable(protocol):
    """Three unfollowed responses, and scores that are all equal: reasons, never p-values."""
    rng = np.random.default_rng(5)
    base, tuned = [], []
    same = np.tile(np.linspace(1.0, 0.1, 10)[:, None], (1, 6))  # one matrix for every example: equal scores
    mask = np.arange(10) < 3
    for i in range(12):
        base.append(record_from(f"lima_author_{i}", same, mask))
        tuned.append(record_from(f"lima_author_{i}", rng.random((10, 6)), mask, rating=1.0 if i < 3 else 4.0))
    result = json.loads(json.dumps(analyze_records(base, tuned, protocol=protocol).to_json(), allow_nan=False))
    t1, t2 = result["table1"]["lima"], result["table2"]["lima"]
    assert t1["p_value"] is None and t1["reason"] == "side 1: n = 3 < 5" and t1["unfollowed"]["n"] == 3
    assert t2["p_value"] is None and t2["reason"].startswith("side 1: zero variance")
    assert t2["paired_p_value"] is None and t2["paired_reason"].startswith("side 1: zero variance")
    refused = [f for f in result["finding"] if not f["testable"]]
    assert refused and all(f["p_value"] is None and f["p_adjusted"] is None and f["reason"] for f in refused)
    assert all(not f["significant"] for f in refused)
    console = Console(file=io.StringIO(), width=200)
    print_tables(result, console)
    printed = console.file.getvalue()
    assert "not testable (side 1: n = 3 < 5)" in printed and "not testable (side 1: zero variance" in printed


def test_paper_protocol_keeps_short_and_empty_responses_in_table2_only():
    rng = np.random.default_rng(6)
    base = [make_record(f"lima_author_{i}", rng, focus=0.0) for i in range(8)]
    tuned = [make_record(f"lima_author_{i}", rng, focus=1.0, rating=4.0 if i % 2 else 1.0) for i in range(6)]
    tuned.append(make_record("lima_author_6", rng, focus=1.0, rating=4.0, m=0))  # empty response
    tuned.append(make_record("lima_author_7", rng, focus=1.0, rating=1.0, m=3))
    paper = analyze_records(base, tuned, protocol="paper")
    sound = analyze_records(base, tuned, protocol="sound")
    assert paper["table2"]["lima"]["tuned"]["n"] == 8 and sound["table2"]["lima"]["tuned"]["n"] == 6
    assert paper["table1"]["lima"]["followed"]["n"] + paper["table1"]["lima"]["unfollowed"]["n"] == 6
    scores = {row["id"]: row["tuned"] for row in paper["scores"]}
    assert scores["lima_author_6"] == 0.0 and scores["lima_author_7"] > 0
    assert paper["excluded"]["short_response"]["tuned"] == ["lima_author_6", "lima_author_7"]
    assert paper["excluded"]["short_response_in_table2"] and not sound["excluded"]["short_response_in_table2"]
    values = [r.score for r in map(score_example, tuned)]
    assert paper["table2"]["lima"]["tuned"]["std"] == pytest.approx(np.std(values))  # ddof 0
    assert "nulls" not in paper and paper["protocol"] == "paper"


def test_sound_protocol_finds_a_planted_instruction_gain_beside_its_controls():
    base, tuned = planted_runs()
    result = analyze_records(base, tuned)
    assert result["protocol"] == "sound" and result["params"]["ddof"] == 1
    control = result["table2"]["all"]["control"]
    assert control["significant"] and control["instruction_gain"]["mean"] > control["control_gain"]["mean"]
    beyond = result["table1"]["all"]["control"]  # followed replies focus on the instruction, beyond its controls
    assert beyond["significant"] and beyond["followed"]["mean"] > beyond["unfollowed"]["mean"] and beyond["ci"][0] > 0
    assert control["ci"][0] > 0 and control["n"] == 45
    assert result["nulls"]["contrast"]["significant"] and result["nulls"]["strata"]["start"]["significant"]
    assert result["nulls"]["strata"]["end"]["n"] == 0 and result["nulls"]["strata"]["end"]["reason"]
    keys = {"method", "claim", "testable", "reason", "p_value", "p_adjusted", "significant", "effect_size", "ci"}
    assert all(set(f) == keys and f["method"] == "attribution" for f in result["finding"])
    assert len(result["finding"]) == 4 + 4 + 1 + 3  # Table 1 and 2 per group and all, contrast, three strata
    assert all("attention" not in f["claim"] for f in result["finding"])


def position_runs(seed: int, n: int = 30, examples: int = 60, start_gain: float = 0.0, boost_start: float = 0.0):
    """Random matrices; instruction = 5 tokens at a random rotation; tuned optionally boosts the first 4 tokens
    of every prompt (a position effect) or the instruction only where it is at the start (``start_gain``)."""
    rng = np.random.default_rng(seed)
    base, tuned = [], []
    for i in range(examples):
        mask = nulls.random_placement(np.arange(n) < 5, rng)
        b, t = rng.random((n, 8)), rng.random((n, 8))
        t[:4] += boost_start
        if nulls.position(mask) == "start":
            t[mask] += start_gain
        base.append(record_from(f"lima_author_{i}", b, mask))
        tuned.append(record_from(f"lima_author_{i}", t, mask, rating=4.0 if i % 2 else 1.0))
    return base, tuned


def test_a_position_effect_is_not_reported_as_an_instruction_finding():
    base, tuned = position_runs(seed=11, boost_start=1.5)
    result = analyze_records(base, tuned)
    assert result["table2"]["all"]["paired_p_value"] < 0.05  # the raw scores move (the position effect) ...
    assert not any(f["significant"] for f in result["finding"])  # ... but no finding is declared
    # anywhere controls would have confounded the start third with its place; matched ones do not
    start = result["nulls"]["strata"]["start"]
    assert start["n"] >= 5 and start["control_gain"]["mean"] > start["anywhere_control_gain"]["mean"]


def test_strata_show_where_a_gain_comes_from():
    base, tuned = position_runs(seed=12, start_gain=1.5)
    strata = analyze_records(base, tuned)["nulls"]["strata"]
    assert strata["start"]["significant"] and strata["start"]["instruction_gain"]["mean"] > 0.2
    assert not strata["middle"]["significant"] and not strata["end"]["significant"]
    assert sum(s["n"] + s["n_without_matched_control"] for s in strata.values()) == 60


def test_two_sided_claims_are_worded_by_the_observed_direction():
    base, tuned = position_runs(seed=12, start_gain=-1.5)  # tuning lowers the instruction where it is first
    result = analyze_records(base, tuned)
    (start,) = [f for f in result["finding"] if f["claim"].startswith("instruction in the start third")]
    assert start["significant"] and start["effect_size"] < 0 and "instruction less than" in start["claim"]
    assert all("{" not in f["claim"] for f in result["finding"])


def test_null_data_declare_no_finding():
    base, tuned = position_runs(seed=13)
    result = analyze_records(base, tuned)
    assert not any(f["significant"] for f in result["finding"])
    assert sum(f["testable"] for f in result["finding"]) == len(result["finding"])
