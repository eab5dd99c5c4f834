"""Table 3 under both protocols on hand-made and planted runs, the degenerate-data guard, the CLI, the verb list."""

from __future__ import annotations

import itertools
import json

import numpy as np
import pytest
from scipy import stats

from shiftlens.analysis.heads import (
    INSTRUCTION_VERBS,
    HeadsAnalysisSettings,
    compare_pairs,
    head_knowledge,
    word_list,
)
from shiftlens.analysis.heads_output import table_rows
from shiftlens.cli.main import main
from shiftlens.errors import ShiftlensError
from shiftlens.evidence import holm
from shiftlens.heads.controls import matched_controls, zipf
from shiftlens.heads.knowledge import (
    HeadsAnalysisError,
    head_pairs,
    knowledge,
    paper_head_pairs,
    paper_layer_groups,
    sound_layer_groups,
    word_counts,
)
from shiftlens.heads.records import HeadsRunError, layer_table, read_pair_rows, write_outputs
from shiftlens.heads.statistics import bootstrap_ci, permutation_p, permutation_test, welch_test

PAPER, SOUND = HeadsAnalysisSettings(protocol="paper"), HeadsAnalysisSettings(permutations=2000, resamples=500)
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


def rows(entries, heads=HEADS):
    columns = list(zip(*entries)) if entries else [[]] * 5
    return {
        "heads": np.array(heads),
        "layer": np.array(columns[0], dtype=np.int64),
        "head": np.array(columns[1], dtype=np.int64),
        "dim": np.array(columns[2], dtype=np.int64),
        "query": np.array(columns[3], dtype=object),
        "key": np.array(columns[4], dtype=object),
    }


def planted(fractions: dict[str, tuple[int, int]], heads: list[tuple[int, int]]):
    """Base and tuned rows where word w, given (k, m), gains a knowledge pair in k heads and loses one in m − k.

    A knowledge pair is (w, partner) in two dimensions of a head; the other heads keep w's count tied at 0.
    """
    base, tuned = [], []
    for w, (k, m) in fractions.items():
        for i, (layer, head) in enumerate(heads[:m]):
            side = tuned if i < k else base
            side += [(layer, head, d, w, f"{w}partner") for d in (0, 1)]
    return rows(base, heads), rows(tuned, heads)


def test_sound_knowledge_overlap_and_examples_by_hand():
    result = compare_pairs(rows(BASE), rows(TUNED), INSTRUCTION, GENERAL, SOUND)
    (group,) = result["groups"]  # 4 layers: one group
    assert group["layers"] == [0, 3] and result["protocol"] == "sound"
    # write: heads (0,0) 1→2 and (1,0) 0→1 → 1.0 over 2 changed heads, fewer than min_heads = 5: left out
    assert group["instruction"]["n"] == 0 and group["instruction"]["n_too_few_heads"] == 2
    assert group["testable"] is False and group["p_value"] is None and "n = 0 < 5" in group["reason"]
    overlap = {entry["layer"]: entry for entry in result["head_overlap_by_layer"]}
    assert overlap[0]["heads"] == pytest.approx([1 / 3, 0.0]) and overlap[0]["mean"] == pytest.approx(1 / 6)
    assert overlap[1]["heads"] == [0.0, 0.0] and overlap[3] == {"layer": 3, "mean": None, "heads": [None, None]}
    assert set(result["examples"]["write"]) == {"essay=write", "code=write"}
    assert result["examples"]["explain"] == ["explain=idea"]
    assert result["finding"][0]["testable"] is False
    json.dumps(result.to_json(), allow_nan=False)


def test_paper_knowledge_counts_as_the_authors_do():
    entries = [
        (0, 0, 0, "write", "poem"),
        (0, 0, 0, "poem", "write"),  # q=k and k=q in one dimension: counted twice → paper knowledge
        (0, 0, 1, "Write", "code"),  # sorted as written ("Write" < "code"), then lower-cased: write=code
        (0, 0, 2, "code", "write"),  # code=write: a different string, so neither recurs
        (0, 0, 3, "Write", "write"),
        (0, 0, 4, "write", "Write"),  # a word with its other spelling: kept by the paper, dropped by sound
    ]
    paper = knowledge(paper_head_pairs(rows(entries))[(0, 0)])
    sound = knowledge(head_pairs(rows(entries))[(0, 0)])
    assert paper == {("poem", "write"), ("write", "write")}
    assert sound == {("code", "write")}
    assert word_counts(paper) == {"write": 3, "poem": 1}


def test_paper_table3_is_welch_with_population_std_per_eighth_of_layers():
    heads = [(layer, 0) for layer in range(10)]  # paper groups: layers 0-7 and 8-9
    inst = {"write": (3, 4), "explain": (1, 2), "give": (2, 2), "make": (0, 3), "tell": (4, 8), "find": (5, 6)}
    gen = {f"verb{i}": (i % 4, 4 + i % 3) for i in range(9)}
    base, tuned = planted({**inst, **gen}, heads)
    result = compare_pairs(base, tuned, list(inst), list(gen), PAPER)
    first, second = result["groups"]
    assert first["layers"] == [0, 7] and second["layers"] == [8, 9]
    a = [k / m for k, m in inst.values()]
    b = [k / m for k, m in gen.values()]
    assert first["instruction"]["std"] == pytest.approx(np.std(a, ddof=0)) and first["instruction"]["n"] == 6
    assert first["general"]["mean"] == pytest.approx(np.mean(b)) and first["general"]["n"] == 9
    expected = stats.ttest_ind(a, b, equal_var=False)
    assert first["p_value"] == pytest.approx(expected.pvalue, rel=1e-12)
    assert first["ci"] == pytest.approx(list(expected.confidence_interval(0.95)), rel=1e-12)
    assert first["effect_size"] == pytest.approx(np.mean(a) - np.mean(b))
    assert first["p_adjusted"] == pytest.approx(holm([expected.pvalue])[0])  # the only testable group
    assert first["test"] == "Welch t-test, two-sided"
    assert second["testable"] is False and second["reason"] == "side 1: n = 0 < 5; side 2: n = 0 < 5"
    assert [f["testable"] for f in result["finding"]] == [True, False]


@pytest.mark.parametrize("settings", [PAPER, SOUND], ids=["paper", "sound"])
def test_the_demos_degenerate_group_is_not_testable(settings):
    """The demo's group "1-1": 3 instruction words, every one at 1.0 (std 0), against ~285 general words."""
    heads = [(layer, head) for layer in range(4) for head in range(8)]
    inst = {"give": (6, 6), "make": (7, 7), "find": (5, 5)}
    gen = {verb: (i % 7, 6) for i, verb in enumerate(word_list()[:285])}
    base, tuned = planted({**inst, **gen}, heads)
    result = compare_pairs(base, tuned, list(inst), list(gen), settings)
    (group,) = result["groups"]
    assert group["instruction"]["mean"] == 1.0 and group["instruction"]["std"] == 0.0
    assert group["instruction"]["n"] == 3 and group["general"]["n"] > 5
    assert group["testable"] is False and group["reason"] == "side 1: n = 3 < 5"
    assert group["p_value"] is None and group["p_adjusted"] is None and group["significant"] is False
    assert table_rows(result)[0][-2] == "not testable (side 1: n = 3 < 5)"
    # With five such words the sample is big enough, but constant: still no p-value.
    inst.update({"tell": (6, 6), "write": (5, 5)})
    base, tuned = planted({**inst, **gen}, heads)
    (group,) = compare_pairs(base, tuned, list(inst), list(gen), settings)["groups"]
    assert group["testable"] is False and group["reason"] == "side 1: zero variance (all 1)"


def test_the_guard_refuses_degenerate_samples_in_both_tests():
    rng = np.random.default_rng(0)
    general = rng.random(285)
    for test in (welch_test([1.0, 1.0, 1.0], general), permutation_test([1.0, 1.0, 1.0], general, rng)):
        assert test.testable is False and test.p_value is None and test.reason == "side 1: n = 3 < 5"
    assert welch_test(general[:9], [0.5] * 6).reason == "side 2: zero variance (all 0.5)"


def test_permutation_p_matches_exact_enumeration_and_the_interval_covers_the_effect():
    a, b = np.array([0.9, 0.7, 0.8, 1.0, 0.6]), np.array([0.5, 0.7, 0.4, 0.6, 0.3, 0.55])
    pooled = np.concatenate([a, b])
    observed = abs(a.mean() - b.mean())
    splits = [np.array(s) for s in itertools.combinations(range(11), 5)]
    exact = np.mean([abs(pooled[s].mean() - np.delete(pooled, s).mean()) >= observed - 1e-12 for s in splits])
    p = permutation_p(a, b, 40000, np.random.default_rng(1))
    assert p == pytest.approx(exact, abs=4 * np.sqrt(exact * (1 - exact) / 40000))
    lo, hi = bootstrap_ci(a, b, 4000, np.random.default_rng(2))
    assert lo < a.mean() - b.mean() < hi and hi - lo < 0.6
    result = permutation_test(a, b, np.random.default_rng(3), permutations=999)
    assert result.testable and result.effect_size == pytest.approx(a.mean() - b.mean())
    assert result.p_value >= 1 / 1000


def test_sound_finds_a_planted_gain_and_stays_quiet_without_one():
    heads = [(layer, head) for layer in range(4) for head in range(4)]
    inst_words, pool = list(INSTRUCTION_VERBS[:10]), word_list()[:300]
    gain = {w: (10 - i % 3, 10) for i, w in enumerate(inst_words)}  # 0.8-1.0 of changed heads gain
    controls = {w: (i % 11, 10) for i, w in enumerate(pool)}  # 0.0-1.0, no preference
    base, tuned = planted({**gain, **controls}, heads)
    (group,) = compare_pairs(base, tuned, inst_words, pool, SOUND)["groups"]
    assert group["testable"] and group["significant"] and group["p_value"] < 0.01
    assert group["effect_size"] > 0.2 and group["ci"][0] > 0 and group["general"]["n"] == 50
    quiet = {w: (i % 11, 10) for i, w in enumerate(inst_words)}  # the control words' own spread
    base, tuned = planted({**quiet, **controls}, heads)
    (group,) = compare_pairs(base, tuned, inst_words, pool, SOUND)["groups"]
    assert group["testable"] and not group["significant"] and group["p_value"] > 0.2


def test_sound_leaves_out_words_behind_too_few_heads_and_counts_them():
    heads = [(layer, 0) for layer in range(4)] + [(layer, 1) for layer in range(4)]
    inst = {"write": (2, 4), "give": (1, 1), "tell": (0, 0), **{v: (i % 4 + 1, 6) for i, v in enumerate("abcde")}}
    gen = {verb: (i % 5, 5) for i, verb in enumerate(word_list()[:40])}
    base, tuned = planted({**inst, **gen}, heads)
    (group,) = compare_pairs(base, tuned, list(inst), list(gen), SOUND)["groups"]
    side = group["instruction"]
    assert side["words"] == list("abcde") and side["n"] == 5
    assert side["n_too_few_heads"] == 2 and side["n_no_change"] == 1  # write (4 heads), give (1); tell
    assert group["general"]["n_usable"] == 40 and group["general"]["n"] == 25  # 5 matched controls each


def test_layer_groups_per_protocol():
    assert sound_layer_groups(list(range(30))) == [
        list(range(0, 8)),
        list(range(8, 16)),
        list(range(16, 23)),
        list(range(23, 30)),
    ]
    assert sound_layer_groups(list(range(15))) == [list(range(15))]  # fewer than 16 layers: one group
    assert sound_layer_groups(list(range(15)), 2) == [list(range(8)), list(range(8, 15))]
    with pytest.raises(HeadsAnalysisError, match="fewer than 4 layers in a group; use at most 3"):
        sound_layer_groups(list(range(12)), 4)
    assert paper_layer_groups(list(range(20))) == [list(range(8)), list(range(8, 16)), list(range(16, 20))]


def test_controls_are_the_nearest_in_frequency_without_reuse():
    pool = word_list()
    chosen = matched_controls(["write", "explain"], pool, per_word=4)
    assert len(chosen) == len(set(chosen)) == 8 and not {"write", "explain"} & set(chosen)
    first = sorted(["write", "explain"], key=lambda w: -zipf(w))[0]
    nearest = sorted(pool, key=lambda w: (abs(zipf(w) - zipf(first)), w))[:4]
    assert chosen[:4] == nearest
    gap = np.mean([abs(zipf(w) - zipf(first)) for w in chosen[:4]])
    assert gap < 0.05 < np.mean([abs(zipf(w) - zipf(first)) for w in pool])
    assert len(matched_controls(["write"], ["walk", "run"], per_word=5)) == 2  # the pool runs out


def test_settings_are_checked():
    base, tuned = rows(BASE), rows(TUNED)
    with pytest.raises(HeadsAnalysisError, match="layer // 8"):
        compare_pairs(base, tuned, INSTRUCTION, GENERAL, HeadsAnalysisSettings(protocol="paper", n_groups=2))
    with pytest.raises(HeadsAnalysisError, match="--groups"):
        compare_pairs(base, tuned, INSTRUCTION, GENERAL, HeadsAnalysisSettings(n_groups=2))
    with pytest.raises(HeadsAnalysisError, match="min heads must be at least 1"):
        compare_pairs(base, tuned, INSTRUCTION, GENERAL, HeadsAnalysisSettings(min_heads=0))
    with pytest.raises(ShiftlensError, match="unknown protocol 'exact'"):
        head_knowledge(base, tuned, "exact")


def write_run(directory, entries):
    """Store hand-made pairs as a heads run's Parquet (2 heads × 4 dimensions per layer)."""
    words = sorted({w for e in entries for w in e[3:]})
    tables = []
    for layer in range(4):
        mine = sorted((e for e in entries if e[0] == layer), key=lambda e: (e[1], e[2]))
        arrays = {
            "energy": np.tile(np.array([4.0, 3.0, 2.0, 1.0]), (2, 1)),
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


@pytest.mark.parametrize("protocol", ["sound", "paper"])
def test_parquet_round_trip_and_cli(tmp_path, capsys, protocol):
    write_run(tmp_path / "base", BASE)
    write_run(tmp_path / "tuned", TUNED)
    read = read_pair_rows(tmp_path / "base")
    assert sorted(map(tuple, read["heads"].tolist())) == HEADS and len(read["query"]) == len(BASE)
    settings = HeadsAnalysisSettings(protocol=protocol, seed=4)
    expected = compare_pairs(rows(BASE), rows(TUNED), INSTRUCTION, GENERAL, settings).to_json()
    (tmp_path / "instruction.txt").write_text("\n".join(INSTRUCTION))
    (tmp_path / "general.txt").write_text("\n".join(GENERAL))
    options = ["--instruction-verbs", str(tmp_path / "instruction.txt"), "--protocol", protocol, "--seed", "4"]
    options += ["--general-verbs", str(tmp_path / "general.txt"), "--json", str(tmp_path / "result.json")]
    options += ["--out", str(tmp_path / "report")]
    assert main(["analyze", "heads", str(tmp_path / "base"), str(tmp_path / "tuned"), *options]) == 0
    got = json.loads((tmp_path / "result.json").read_text())
    got["examples"] = {k: sorted(v) for k, v in got["examples"].items()}
    expected["examples"] = {k: sorted(v) for k, v in expected["examples"].items()}
    assert got == expected and got["protocol"] == protocol and got["finding"][0]["method"] == "heads"
    names = {p.name for p in (tmp_path / "report").iterdir()}
    assert {"table3.csv", "heads_analysis.json", "head_overlap.png", "head_overlap.svg"} <= names
    assert json.loads((tmp_path / "report" / "heads_analysis.json").read_text()) == json.loads(
        (tmp_path / "result.json").read_text()
    )
    out = capsys.readouterr().out
    assert f"({protocol} protocol)" in out and "not testable" in out
    assert main(["analyze", "heads", str(tmp_path / "missing"), str(tmp_path / "tuned")]) == 2
    assert "missing/heads.parquet not found" in capsys.readouterr().err
    assert main(["analyze", "heads", str(tmp_path / "base"), str(tmp_path / "tuned"), "--groups", "3"]) == 2
    assert "leave fewer than 4 layers in a group" in capsys.readouterr().err
    with pytest.raises(HeadsRunError):
        read_pair_rows(tmp_path / "missing")


def test_packaged_general_verbs():
    verbs = word_list()
    assert len(verbs) == 3000 == len(set(verbs))
    assert not set(verbs) & set(INSTRUCTION_VERBS)
    assert all(v.isalpha() and v.islower() for v in verbs)
    assert {"be", "do", "can"}.isdisjoint(verbs) and {"know", "think", "walk"} <= set(verbs)
