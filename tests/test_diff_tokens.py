"""The per-token divergence run (issue 17): the organism pair disagrees, a model against itself nowhere."""

from __future__ import annotations

import json

import pyarrow.parquet as pq
import pytest
import torch
from conftest import save_tiny_model

from shiftlens import organism
from shiftlens.diff.tokens import SUMMARY_FILE, TOKENS_FILE, TokenizerMismatch, diff_tokens, null_model
from shiftlens.examples import load_examples
from shiftlens.models import load_model


@pytest.fixture(scope="module")
def pair():
    return load_model("organism-base"), load_model("organism-tuned")


def test_the_pair_disagrees_and_a_model_against_itself_does_not(pair, tmp_path) -> None:
    base, tuned = pair
    examples = load_examples(organism.prompts_path(), None, 3)
    out = diff_tokens(base, tuned, examples, tmp_path / "pair")
    table = pq.read_table(out / TOKENS_FILE).to_pydict()
    summary = json.loads((out / SUMMARY_FILE).read_text())
    assert len(table["kl"]) == sum(e["tokens"] for e in summary["examples"]) > 0
    assert summary["mean_kl"] > 0.01 and max(table["kl"]) == summary["top_tokens"][0]["kl"]
    assert sum(b["tokens"] for b in summary["by_relative_position"]) == len(table["kl"])
    assert summary["mean_kl_null"] > 0 and all(b["mean_kl_null"] is not None for b in summary["by_relative_position"])
    same = diff_tokens(tuned, tuned, examples, tmp_path / "same")
    assert max(pq.read_table(same / TOKENS_FILE).column("kl").to_pylist()) < 1e-6
    assert max(pq.read_table(same / TOKENS_FILE).column("kl_null").to_pylist()) < 1e-6  # no change: no noise
    assert pq.read_table(same / TOKENS_FILE).column("rank_base").to_pylist() == table["rank_tuned"]


def test_the_null_model_moves_each_parameter_by_the_tunings_size_and_only_there(pair) -> None:
    base, tuned = pair
    null = null_model(base.model, tuned.model, seed=0)
    moved = dict(null.named_parameters())
    for name, parameter in base.model.named_parameters():
        change = tuned.model.get_parameter(name) - parameter
        noise = moved[name] - parameter
        rows = (lambda t: t.reshape(t.shape[0], -1).norm(dim=1)) if parameter.ndim > 1 else torch.abs
        assert torch.allclose(rows(noise), rows(change), atol=1e-5)
        assert not torch.equal(noise, change) or not change.any()  # another direction than the tuning's
    assert torch.equal(null_model(base.model, tuned.model, 0).lm_head.weight, null.lm_head.weight)  # seeded


def test_more_examples_extend_the_run_and_a_rerun_resumes(pair, tmp_path) -> None:
    base, tuned = pair
    examples = load_examples(organism.prompts_path(), None, 3)
    out = diff_tokens(base, tuned, examples[:2], tmp_path / "grow")
    first = pq.read_table(out / TOKENS_FILE).to_pydict()
    diff_tokens(base, tuned, examples, out)
    grown = pq.read_table(out / TOKENS_FILE).to_pydict()
    assert set(grown["id"]) == {e.id for e in examples} and grown["kl"][: len(first["kl"])] == first["kl"]


def test_two_vocabularies_are_refused(pair, tmp_path) -> None:
    save_tiny_model(tmp_path / "tiny")
    examples = load_examples(organism.prompts_path(), None, 1)
    with pytest.raises(TokenizerMismatch, match="the two tokenizers differ"):
        diff_tokens(load_model(str(tmp_path / "tiny")), pair[1], examples, tmp_path / "o")


def test_the_logit_lens_of_both_models_is_in_the_same_run(pair, tmp_path) -> None:
    base, tuned = pair
    out = diff_tokens(base, tuned, load_examples(organism.prompts_path(), None, 2), tmp_path / "lens")
    lens = json.loads((out / SUMMARY_FILE).read_text())["logit_lens"]
    n_layers = base.model.config.num_hidden_layers
    assert len(lens["mean_probability_by_layer_base"]) == len(lens["mean_probability_by_layer_tuned"]) == n_layers
    table = pq.read_table(out / TOKENS_FILE).to_pydict()
    assert lens["mean_probability_by_layer_tuned"][-1] == pytest.approx(sum(table["p_tuned"]) / len(table["p_tuned"]))
    assert all(-1 <= f < n_layers for f in table["formation_base"] + table["formation_tuned"])
    assert lens["tokens_formed"]["both"] <= min(lens["tokens_formed"]["base"], lens["tokens_formed"]["tuned"])
