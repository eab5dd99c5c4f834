"""`shiftlens validate` (issue 14): a pair planted by weight surgery is recovered; nothing is found where nothing is.

The planted pair is built here from organism-base (`shiftlens.validation.planted`): 16 general verbs, each
paired with an admitted partner in 2 dimensions of every head of every layer (strength 2 × the row norm),
and one concept (a word and its 4 nearest neighbours) planted in layer 1's down-projection at 2 × its
largest eigenvalue; the continued model is organism-base + noise as large as organism-tuned's update.
Small on purpose: 10 prompts, 6 noise draws (the fewest that measure a declared finding's false-positive rate).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from shiftlens import organism
from shiftlens.cli.main import main
from shiftlens.heads.core import HeadPairs, PairFilter, explain_layer
from shiftlens.models import ModuleWeights, load_tokenizer
from shiftlens.spans import token_mask
from shiftlens.validation.ffn_check import concept_finding, concept_recall
from shiftlens.validation.heads_check import admissible_keys, kept_pairs, pair_gain_finding, relation_recall
from shiftlens.validation.planted import add_qk, build_planted_pair
from shiftlens.validation.report import report_text
from shiftlens.validation.run import HEADLINES, beyond_noise, declared_rate, spread, validate
from shiftlens.validation.truth import (
    FILE,
    GroundTruthError,
    Relation,
    control_spans,
    read_ground_truth,
    write_ground_truth,
)

CONTRACT_KEYS = (
    "follow_acc_base", "follow_acc_tuned", "attribution_p", "attribution_control_p", "table1_auc",
    "heads_planted_recall", "heads_p", "ffn_planted_recall", "ffn_p", "continued_vs_base", "false_positive_rate",
    "seeds",
)  # fmt: skip


@pytest.fixture(scope="module")
def planted(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("planted")
    build_planted_pair(out, n_prompts=10)
    return out


@pytest.fixture(scope="module")
def result(planted: Path) -> dict:
    return validate(planted, draws=6, log=lambda _: None)


def test_the_planted_heads_and_concept_are_recovered(result: dict) -> None:
    seed = result["seeds"]["0"]
    assert seed["heads_planted_recall"] == 1.0
    assert seed["heads_pair_recall"] >= 0.9 and seed["heads_pair_recall_base"] < 0.3  # base: admitted pairs by chance
    assert seed["heads_p_adjusted"] < 0.01
    assert seed["ffn_planted_recall"] == 1.0 and seed["ffn_recall_base"] == 0.0
    assert seed["ffn_p_adjusted"] < 0.01
    # the surgery moved only the down-projection, so the base's down-projections read through the (unchanged)
    # embeddings hold what the base holds (1 word by chance; tuned: 4 of 5): the gain is the down-projections' own
    assert seed["ffn_holds_base_ffn"] == [1] and seed["ffn_concept_holds"] == [4]
    assert seed["ffn_beyond_embeddings_p"] < 0.01
    assert result["heads_p"]["max"] == seed["heads_p"] and result["heads_p"]["n"] == 1  # the figure over seeds


def test_the_continued_model_shows_no_planted_shift(result: dict) -> None:
    continued = result["continued_vs_base"]
    for test in ("heads", "ffn"):  # the planted methods: quiet even before correction
        assert continued[f"{test}_p"] is None or continued[f"{test}_p"] > 0.05, test
    # attribution's tests are not held to that under noise as large as tuning's: they declare 7–20 % of noise draws
    # uncorrected (docs/validation.md, "Negative controls"), so only their Holm-adjusted p must stay above 0.05
    for test in ("attribution_control", "attribution_placement"):
        assert continued[f"{test}_p_adjusted"] is None or continued[f"{test}_p_adjusted"] > 0.05, test
    assert not any(f["significant"] for f in continued["finding"])
    assert continued["heads_planted_recall"] <= result["seeds"]["0"]["heads_planted_recall"]
    assert continued["ffn_planted_recall"] == 0.0


def test_noise_and_the_base_itself_declare_nothing(result: dict) -> None:
    rates = result["false_positive_rate"]
    assert rates["draws"] == 6 and rates["heads"] == rates["ffn"] == rates["attribution"] == 0.0  # declared
    assert rates["tests"]["heads"] == rates["tests"]["ffn"] == 0.0  # and their tests against the base alone
    # attribution's test against the base alone is not held to 0: under noise as large as this surgery it fires in
    # 7–20 % of draws over 40 prompts (docs/validation.md, "Negative controls"); what is declared must also beat
    # the other draws' effects
    assert rates["testable_draws"]["attribution"] == rates["testable_draws"]["attribution_placement"] == 6
    assert set(rates["base_vs_base"].values()) == {None}  # identical models: every test refused, with its reason
    assert all(rates["base_vs_base_reasons"].values())


def test_the_planted_shifts_lie_beyond_tuning_sized_noise(result: dict) -> None:
    seed, continued = result["seeds"]["0"], result["continued_vs_base"]
    assert seed["heads_noise_p_adjusted"] < 0.01 and seed["ffn_noise_p_adjusted"] < 0.01
    assert continued["heads_noise_p"] > 0.05 and continued["ffn_noise_p"] > 0.05  # the continued model is noise here


def test_a_declared_finding_needs_its_test_and_an_effect_beyond_the_other_draws() -> None:
    def draw(p: float, effect: float) -> dict:
        return {"x_p": p, "x_effect": effect}

    quiet = [draw(0.5, e) for e in (0.0, 0.1, -0.1, 0.05, -0.05)]
    # the big draw is declared (p < 0.05 and far beyond the other five); the small one fires its test alone
    assert declared_rate([*quiet, draw(0.01, 5.0)], "x") == 1 / 6
    assert declared_rate([*quiet, draw(0.01, 0.02)], "x") == 0.0
    assert declared_rate([*quiet, draw(0.5, 5.0)], "x") == 0.0  # beyond the others, but its own test is quiet
    assert declared_rate(quiet, "x") is None  # 5 draws leave 4 others: not testable


def test_the_report_says_what_is_declared_and_what_each_test_alone_fires_on(result: dict) -> None:
    text = report_text(result)
    assert text.count("beyond tuning-sized noise") == 3  # one line per method
    assert "the down-projections' own part" in text
    assert "0% of 6 noise draws declared (test alone 0% of 6 testable" in text  # heads and FFN
    assert "Table 1 AUC" in text and "not a headline" in text
    refused = {**result, "false_positive_rate": {**result["false_positive_rate"], "heads": None, "draws": 5}}
    assert "declared rate not measured (5 noise draws: at least 6 are needed)" in report_text(refused)


def test_the_json_has_every_key_of_the_contract(result: dict) -> None:
    assert set(CONTRACT_KEYS) <= set(result)
    assert {"attribution", "heads", "ffn"} <= set(result["false_positive_rate"])
    assert {f"{t}_p" for t in HEADLINES} <= set(result["seeds"]["0"])
    beside = {"table1_p", "table1_auc_base", "table1_within_p", "attribution_noise_p", "heads_noise_p", "ffn_noise_p"}
    assert beside <= set(result["seeds"]["0"]) and "table1" not in HEADLINES  # Table 1 is reported, not a headline
    assert set(result["follow_acc_tuned"]) == {"mean", "std", "min", "max", "n"}
    json.dumps(result, allow_nan=False)


def test_the_base_against_itself_finds_nothing(tmp_path: Path, capsys) -> None:
    records = [{k: v for k, v in r.items() if k not in ("task", "group")} for r in organism.load_prompts()[:6]]
    (tmp_path / "prompts.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    write_ground_truth(
        tmp_path,
        {
            "schema": 1,
            "name": "nothing",
            "models": {"base": "organism-base", "continued": None, "tuned": {"0": "organism-base"}},
            "prompts": "prompts.jsonl",
            "vocab": str(organism.vocab_path()),
            "heads": {"layers": [1], "relations": [{"query": "eat", "keys": ["food"]}]},
            "ffn": {"concepts": [{"name": "c", "words": ["red", "blue", "green"]}]},
        },
    )
    out = tmp_path / "result.json"
    assert main(["validate", str(tmp_path), "--json", str(out), "--draws", "0"]) == 0
    printed = capsys.readouterr().out
    assert "follow accuracy not measured" in printed and f"wrote {out}" in printed
    data = json.loads(out.read_text())
    seed = data["seeds"]["0"]
    assert {seed[f"{t}_p"] for t in HEADLINES if t != "table1"} == {None}  # zero variance: not testable
    assert all(seed[f"{t}_reason"] for t in HEADLINES if t != "table1")
    assert data["continued_vs_base"] is None and data["false_positive_rate"]["attribution"] is None
    assert data["follow_acc_tuned"]["n"] == 0


def test_the_shipped_organism_is_validated_by_default() -> None:
    """No directory: the packaged organism, its ground truth's models resolved inside the package."""
    result = validate(None, limit=8, seeds=["0"], draws=0, log=lambda _: None)
    truth = json.loads((organism.data_dir() / FILE).read_text())
    assert Path(result["directory"]) == organism.data_dir() and result["name"] == truth["name"]
    models = result["planted"]["models"]
    assert Path(models["base"]) == organism.model_dir(truth["models"]["base"])
    assert Path(models["tuned"]["0"]) == organism.model_dir(truth["models"]["tuned"]["0"])
    assert result["n_prompts"] == 8 and result["follow_reason"] is None
    assert result["seeds"]["0"]["follow_acc_tuned"] > result["seeds"]["0"]["follow_acc_base"]


@pytest.mark.parametrize("family", ["llama", "gpt2"])  # separate q, k with grouped KV heads; one fused Conv1D
def test_planted_q_and_k_updates_land_in_each_layout(family: str) -> None:
    from conftest import tiny_model

    from shiftlens.architecture import attention_qk, geometry, layer_matrices

    model = tiny_model(family)
    geo, source = geometry(model.config), ModuleWeights(model)
    before = [w.clone() for w in attention_qk(source, model.config, 1, fold_norm=False)]  # views of the weights
    v_before = layer_matrices(source, model.config, 1)["v"].clone()
    untouched = [w.clone() for w in attention_qk(source, model.config, 0)]
    g = torch.Generator().manual_seed(0)
    delta_q = torch.randn(geo.n_heads * geo.head_dim, geo.hidden, generator=g)
    delta_k = torch.randn(geo.n_kv_heads * geo.head_dim, geo.hidden, generator=g)
    add_qk(model, model.config, 1, delta_q, delta_k)
    after = attention_qk(source, model.config, 1, fold_norm=False)
    group = geo.n_heads // geo.n_kv_heads
    expected_k = delta_k.reshape(geo.n_kv_heads, geo.head_dim, geo.hidden).repeat_interleave(group, dim=0)
    torch.testing.assert_close(after[0] - before[0], delta_q.reshape(geo.n_heads, geo.head_dim, geo.hidden))
    torch.testing.assert_close(after[1] - before[1], expected_k)
    assert torch.equal(layer_matrices(source, model.config, 1)["v"], v_before)  # nothing else moved
    assert all(torch.equal(a, b) for a, b in zip(attention_qk(source, model.config, 0), untouched, strict=True))


def test_a_directory_without_ground_truth_is_a_one_line_error(tmp_path: Path, capsys) -> None:
    assert main(["validate", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and FILE in err[0]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"schema": 2}, "schema 2"),
        ({"models": {"tuned": {"0": "x"}}}, "missing key 'base'"),
        ({"models": {"base": "organism-base", "tuned": {}}}, "map each tuning seed"),
        ({"prompts": None}, "missing key 'prompts'"),
    ],
)
def test_a_bad_ground_truth_file_is_named(tmp_path: Path, change: dict, message: str) -> None:
    data = {
        "schema": 1,
        "models": {"base": "organism-base", "tuned": {"0": "organism-tuned"}},
        "prompts": "p",
        "vocab": "v",
    }
    data.update(change)
    data = {k: v for k, v in data.items() if v is not None}
    (tmp_path / FILE).write_text(json.dumps(data))
    with pytest.raises(GroundTruthError, match=message):
        read_ground_truth(tmp_path)


def test_unknown_seeds_and_records_without_fields_are_refused(planted: Path, tmp_path: Path) -> None:
    with pytest.raises(GroundTruthError, match="no tuned model for seed 7"):
        validate(planted, seeds=["7"])
    truth = json.loads((planted / FILE).read_text())
    (tmp_path / "prompts.jsonl").write_text(json.dumps({"id": "a", "prompt": "Say hi."}) + "\n")
    write_ground_truth(tmp_path, {**truth, "prompts": "prompts.jsonl"})
    with pytest.raises(GroundTruthError, match="record lacks response, instruction_spans, control_spans, rating"):
        read_ground_truth(tmp_path).records()


def test_control_spans_have_the_instruction_length_and_never_overlap_it() -> None:
    tokenizer = load_tokenizer("organism-base")
    for record in organism.load_prompts()[:20]:
        spans = control_spans(record["prompt"], record["instruction_spans"], tokenizer)
        offsets = tokenizer(record["prompt"], add_special_tokens=False, return_offsets_mapping=True)["offset_mapping"]
        instruction = token_mask(offsets, [tuple(s) for s in record["instruction_spans"]])
        if not spans:
            assert instruction.sum() > (~instruction).sum() / 2  # no run of that many context tokens
            continue
        control = token_mask(offsets, [tuple(s) for s in spans])
        assert control.sum() == instruction.sum() and not (control & instruction).any()


def layer(pairs: list[tuple[int, int]]) -> HeadPairs:
    """A hand-made layer keeping these (query, key) pairs, all in one head dimension."""
    q, k = (np.array(x, dtype=int).reshape(-1) for x in zip(*pairs)) if pairs else (np.zeros(0, dtype=int),) * 2
    zeros = np.zeros(len(q), dtype=int)
    return HeadPairs(np.zeros((1, 1)), np.zeros((1, 1), dtype=int), zeros, zeros, q, k, zeros * 1.0, zeros * 1.0)


def test_relation_recall_counts_a_relation_once_any_key_is_kept() -> None:
    index = {w: i for i, w in enumerate("eat apple bread run fast sky".split())}
    relations = [Relation("eat", ("apple", "bread")), Relation("run", ("fast",)), Relation("fly", ("sky",))]
    layers = [layer([(0, 1), (0, 5)]), layer([(3, 2)])]
    got = relation_recall(layers, index, relations, None)
    assert got["recall"] == 0.5 and got["n_in_vocabulary"] == 2  # eat found (apple); run not; fly not in the list
    assert got["pair_recall"] == pytest.approx(1 / 3)
    assert got["precision"] == pytest.approx(1 / 3)  # of (eat, apple), (eat, sky), (run, bread): one planted
    assert relation_recall(layers, index, relations, [1])["recall"] == 0.0


N_WORDS, N_QUERIES = 60, 10
PLANTED = {q: {q + N_QUERIES} for q in range(N_QUERIES)}  # query q's planted key: word q + 10


def gain_test(base: list[tuple[int, int]], other: list[tuple[int, int]], pair_filter: PairFilter | None = None):
    """The heads headline test on hand-made kept pairs of one planted layer, with the planted pairs above."""
    admissible = admissible_keys(PLANTED, pair_filter, N_WORDS)
    return pair_gain_finding(
        kept_pairs([layer(base)], None), kept_pairs([layer(other)], None), PLANTED, admissible, "t"
    )


def random_pairs(rng: np.random.Generator, per_query: int) -> list[tuple[int, int]]:
    """``per_query`` random non-planted keys (≠ the query) for every planted query."""
    pairs = []
    for q, keys in PLANTED.items():
        pool = [k for k in range(N_WORDS) if k != q and k not in keys]
        pairs += [(q, int(k)) for k in rng.choice(pool, size=per_query, replace=False)]
    return pairs


def test_the_heads_test_flags_planted_pairs_beyond_random_admissible_ones() -> None:
    rng = np.random.default_rng(0)
    vectors = torch.nn.functional.normalize(torch.rand(N_WORDS, 8, generator=torch.Generator().manual_seed(0)), dim=1)
    admissive = PairFilter(vectors.double(), torch.zeros(N_WORDS, dtype=torch.float64))  # positive cosines: all pass
    assert all(len(keys) == N_WORDS - 2 for keys in admissible_keys(PLANTED, admissive, N_WORDS).values())
    background = random_pairs(rng, 5)
    planted = [(q, k) for q, keys in PLANTED.items() for k in keys]
    found, figures = gain_test(background, background + planted + random_pairs(rng, 3), admissive)
    assert found.testable and found.p_value == 1 / 1000 and found.effect_size > 5
    assert figures["observed"] == N_QUERIES and 0 < figures["null_mean"] < 1.5  # 3 of 58 keys gained per query
    assert figures["dropped"] == []


def test_the_heads_test_refuses_identical_kept_pairs() -> None:
    # other == base: every planted and every random pair is kept by both or neither, so each of the 999 draws
    # gains exactly 0 and the null has zero variance; the guard refuses it rather than report p = 1
    pairs = random_pairs(np.random.default_rng(1), 5) + [(0, 10), (3, 13)]
    found, figures = gain_test(pairs, pairs)
    assert not found.testable and found.p_value is None
    assert found.reason == "random admissible pairs: zero variance (all 0)"
    assert figures["observed"] == 0 and figures["null_mean"] == 0.0


def test_the_heads_test_is_quiet_when_the_queries_gain_every_pair_alike() -> None:
    rng = np.random.default_rng(2)
    gained = random_pairs(rng, 35)  # 35 of each query's 58 admissible keys (60 %) ...
    planted = [(q, q + N_QUERIES) for q in range(6)]  # ... and the planted key of 6 of the 10 queries (60 %)
    found, figures = gain_test([], gained + planted)
    assert found.testable and found.p_value > 0.05, found  # measured p = 0.65
    assert figures["observed"] == 6 and figures["null_mean"] == pytest.approx(6.0, abs=0.3)
    everything = [(q, k) for q in PLANTED for k in range(N_WORDS) if k != q]  # the verbs pair with everything
    found, figures = gain_test([], everything)
    assert not found.testable and "zero variance (all 10)" in found.reason
    assert figures["observed"] == figures["null_mean"] == N_QUERIES


def test_the_heads_test_draws_only_pairs_the_method_s_own_filter_admits() -> None:
    angles = torch.tensor([0.0, 10.0, 40.0, 80.0, 20.0, 0.0]).deg2rad()
    vectors = torch.stack([angles.cos(), angles.sin()], dim=1).double()
    vectors[5] = 0.0  # word 5 has no co-occurrence vector
    thresholds = torch.tensor([0.5, 0.5, 0.5, 0.5, 0.99, float("inf")], dtype=torch.float64)
    tiny = PairFilter(vectors, thresholds)
    # the method itself, every word a candidate query and key with a positive score: what it keeps is the filter's
    words = torch.rand(6, 3, generator=torch.Generator().manual_seed(3), dtype=torch.float64) + 0.1
    kept = explain_layer(words, torch.ones(1, 1, 3), torch.ones(1, 1, 3), top_k=6, pair_filter=tiny)
    method = {q: sorted(kept.pair_key[kept.pair_query == q].tolist()) for q in range(6)}
    assert method[0] == [1, 2]  # 3: cos 0.17 < θ(0); 4: cos 0.94 < θ(4); 5: θ = inf
    every = admissible_keys({q: set() for q in range(6)}, tiny, 6)
    assert {q: keys.tolist() for q, keys in every.items()} == method
    wanted = {0: {1}, 5: {0}}  # word 5 can pair with nothing: dropped from both sides
    admissible = admissible_keys(wanted, tiny, 6)
    assert admissible[0].tolist() == [2] and admissible[5].size == 0
    # other keeps the planted pair and every pair the filter rejects, never (0, 2): were a rejected key ever
    # drawn, some of the 999 draws would gain 1; all gain 0
    other = kept_pairs([layer([(0, 1), (0, 3), (0, 4), (0, 5), (5, 0)])], None)
    found, figures = pair_gain_finding(kept_pairs([layer([])], None), other, wanted, admissible, "t")
    assert not found.testable and found.reason == "random admissible pairs: zero variance (all 0)"
    assert figures == {"observed": 1, "null_mean": 0.0, "dropped": [5]}
    assert "no planted query word" in pair_gain_finding(other, other, {5: {0}}, admissible, "t")[0].reason
    assert pair_gain_finding(other, other, {}, {}, "t")[0].reason == "no relation is in the word list"


def test_the_ffn_test_flags_a_held_concept_and_refuses_identical_models() -> None:
    rng = np.random.default_rng(0)
    base = rng.random((20, 400)) < 0.1  # 20 components' top words over 400 words
    tuned = base.copy()
    concept = np.array([3, 50, 120, 200, 333])
    tuned[7] = False
    tuned[7, concept] = True
    assert concept_recall(tuned, [concept])["recall"] == 1.0
    found = concept_finding(base, tuned, [concept], "tuning")
    assert found.testable and found.p_value < 0.01 and found.effect_size > 3
    same = concept_finding(base, base, [concept], "nothing")
    assert not same.testable and "zero variance" in same.reason


def test_figures_over_seeds_are_mean_std_min_max_of_the_defined_ones() -> None:
    seeds = [{"heads_p": 0.001, "ffn_p": None, "n": 3, "finding": []}, {"heads_p": 0.003, "ffn_p": None, "n": 5}]
    got = spread(seeds)
    assert got["heads_p"] == {
        "mean": 0.002,
        "std": pytest.approx(0.001414, rel=1e-3),
        "n": 2,
        "min": 0.001,
        "max": 0.003,
    }
    assert got["ffn_p"] == {"mean": None, "std": None, "n": 0, "min": None, "max": None}
    assert "finding" not in got and got["n"]["max"] == 5


def test_the_tuned_effect_is_set_beside_the_noise_draws_effects(result: dict) -> None:
    """The surgery's heads plant lies beyond every noise draw's effect; a figure without effects is None."""
    heads = result["false_positive_rate"]["effect_beyond_noise"]["heads"]
    assert heads["draws"] == 6 and heads["tuned"] > heads["noise_max"] and heads["share_at_least"] == 0.0
    tuned = {"x_effect": 0.5, "y_effect": None}
    null = [{"x_effect": e, "y_effect": None} for e in (0.1, 0.7, -0.2, None)]
    assert beyond_noise(tuned, null, "x") == {
        "tuned": 0.5, "noise_min": -0.2, "noise_max": 0.7, "share_at_least": 1 / 3, "draws": 3
    }  # fmt: skip
    assert beyond_noise(tuned, null, "y") is None and beyond_noise(tuned, [], "x") is None
