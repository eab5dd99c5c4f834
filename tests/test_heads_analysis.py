"""Table 3 statistics on hand-made runs, the Parquet round trip, the CLI and the general-verb list."""

from __future__ import annotations

import json

import numpy as np
import pytest
from scipy import stats

from shiftlens.cli.main import main
from shiftlens.heads.analysis import INSTRUCTION_VERBS, compare_pairs, layer_groups, word_list
from shiftlens.heads.records import HeadsRunError, layer_table, read_pair_rows, write_outputs

HEADS = [(layer, head) for layer in range(4) for head in range(2)]
BASE = [
    (0, 0, 0, "write", "poem"),
    (0, 0, 1, "Poem", "Write"),  # the same pair, order-free and lower-cased: knowledge of head (0, 0)
    (0, 0, 0, "run", "fast"),  # one dimension only: not knowledge
    (0, 1, 0, "explain", "idea"),
    (0, 1, 1, "explain", "idea"),
    (1, 1, 0, "run", "jump"),
    (1, 1, 1, "jump", "run"),
]
TUNED = [
    (0, 0, 0, "write", "poem"),
    (0, 0, 1, "write", "poem"),
    (0, 0, 2, "poem", "write"),
    (0, 0, 0, "write", "essay"),
    (0, 0, 3, "essay", "write"),
    (1, 0, 0, "run", "walk"),
    (1, 0, 1, "run", "walk"),
    (1, 0, 0, "write", "code"),
    (1, 0, 2, "code", "write"),
    (1, 1, 2, "explain", "idea"),
    (1, 1, 3, "idea", "explain"),
]
INSTRUCTION, GENERAL = ["write", "explain"], ["run", "walk", "jump", "write"]


def rows(entries):
    columns = list(zip(*entries))
    return {
        "heads": np.array(HEADS),
        "layer": np.array(columns[0]),
        "head": np.array(columns[1]),
        "dim": np.array(columns[2]),
        "query": np.array(columns[3], dtype=object),
        "key": np.array(columns[4], dtype=object),
    }


def write_run(directory, entries):
    """Store hand-made pairs as a heads run's Parquet (2 heads × 4 dimensions per layer)."""
    words = sorted({w for e in entries for w in e[3:]})
    tables = []
    for layer in range(4):
        mine = sorted((e for e in entries if e[0] == layer), key=lambda e: (e[1], e[2]))
        energy = np.tile(np.array([4.0, 3.0, 2.0, 1.0]), (2, 1))
        arrays = {
            "energy": energy,
            "rank": np.tile(np.arange(4), (2, 1)),
            "pair_head": np.array([e[1] for e in mine], dtype=np.int64),
            "pair_dim": np.array([e[2] for e in mine], dtype=np.int64),
            "pair_query": np.array([words.index(e[3]) for e in mine], dtype=np.int64),
            "pair_key": np.array([words.index(e[4]) for e in mine], dtype=np.int64),
            "pair_similarity": np.full(len(mine), 0.5),
            "pair_score": np.ones(len(mine)),
        }
        tables.append(layer_table("m", layer, arrays, words))
    directory.mkdir()
    write_outputs(directory, tables)


def test_table3_statistics_by_hand():
    result = compare_pairs(rows(BASE), rows(TUNED), INSTRUCTION, GENERAL, n_groups=2)
    first, second = result["groups"]
    assert first["layers"] == [0, 1] and second["layers"] == [2, 3]
    # write: heads (0,0) 1→2 and (1,0) 0→1, others tied → 1.0; explain: (0,1) 1→0, (1,1) 0→1 → 0.5
    instruction, general = [0.5, 1.0], [0.5, 1.0, 0.0]  # run: (1,0) up, (1,1) down; walk up; jump down
    assert first["instruction"] == pytest.approx({"mean": 0.75, "std": np.std(instruction, ddof=1), "n": 2})
    assert first["general"] == pytest.approx({"mean": 0.5, "std": 0.5, "n": 3})  # "write" is no general verb
    expected = stats.ttest_ind(instruction, general, equal_var=False, alternative="greater").pvalue
    assert first["p_value"] == pytest.approx(expected, rel=1e-9)
    assert second["instruction"]["n"] == 0 and second["instruction"]["mean"] is None and second["p_value"] is None
    overlap = {entry["layer"]: entry for entry in result["head_overlap_by_layer"]}
    assert overlap[0]["heads"] == pytest.approx([1 / 3, 0.0]) and overlap[0]["mean"] == pytest.approx(1 / 6)
    assert overlap[1]["heads"] == [0.0, 0.0] and overlap[3] == {
        "layer": 3,
        "mean": None,
        "heads": [None, None],
    }
    assert set(result["examples"]["write"]) == {"essay=write", "code=write"}
    assert result["examples"]["explain"] == ["explain=idea"]
    json.dumps(result, allow_nan=False)


def test_identical_runs_have_only_ties_and_full_overlap():
    result = compare_pairs(rows(TUNED), rows(TUNED), INSTRUCTION, GENERAL, n_groups=2)
    assert result["groups"][0]["instruction"]["n"] == 0 and result["examples"] == {}
    assert result["head_overlap_by_layer"][0]["heads"] == [1.0, None]


def test_layer_groups_are_quarters_of_the_depth():
    assert layer_groups(list(range(30))) == [
        list(range(0, 8)),
        list(range(8, 16)),
        list(range(16, 23)),
        list(range(23, 30)),
    ]
    assert layer_groups([0, 1]) == [[0], [1]]


def test_parquet_round_trip_and_cli(tmp_path, capsys):
    write_run(tmp_path / "base", BASE)
    write_run(tmp_path / "tuned", TUNED)
    read = read_pair_rows(tmp_path / "base")
    assert sorted(map(tuple, read["heads"].tolist())) == HEADS and len(read["query"]) == len(BASE)
    expected = compare_pairs(rows(BASE), rows(TUNED), INSTRUCTION, GENERAL, n_groups=2)
    (tmp_path / "instruction.txt").write_text("\n".join(INSTRUCTION))
    (tmp_path / "general.txt").write_text("\n".join(GENERAL))
    options = ["--instruction-verbs", str(tmp_path / "instruction.txt")]
    options += ["--general-verbs", str(tmp_path / "general.txt"), "--json", str(tmp_path / "result.json")]
    options += ["--out", str(tmp_path / "report"), "--groups", "2"]
    code = main(["analyze", "heads", str(tmp_path / "base"), str(tmp_path / "tuned"), *options])
    assert code == 0
    got = json.loads((tmp_path / "result.json").read_text())
    got["examples"] = {k: sorted(v) for k, v in got["examples"].items()}
    expected["examples"] = {k: sorted(v) for k, v in expected["examples"].items()}
    assert got == expected
    names = {p.name for p in (tmp_path / "report").iterdir()}
    assert {"table3.csv", "heads_analysis.json", "head_overlap.png", "head_overlap.svg"} <= names
    assert "0-1" in capsys.readouterr().out
    assert main(["analyze", "heads", str(tmp_path / "missing"), str(tmp_path / "tuned")]) == 2
    assert "missing/heads.parquet not found" in capsys.readouterr().err
    with pytest.raises(HeadsRunError):
        read_pair_rows(tmp_path / "missing")


def test_packaged_general_verbs():
    verbs = word_list()
    assert len(verbs) == 3000 == len(set(verbs))
    assert not set(verbs) & set(INSTRUCTION_VERBS)
    assert all(v.isalpha() and v.islower() for v in verbs)
    assert {"be", "do", "can"}.isdisjoint(verbs) and {"know", "think", "walk"} <= set(verbs)
