"""The per-token divergence run (issue 17): the organism pair disagrees, a model against itself nowhere."""

from __future__ import annotations

import json

import pyarrow.parquet as pq
import pytest
from conftest import save_tiny_model

from shiftlens import organism
from shiftlens.diff.tokens import SUMMARY_FILE, TOKENS_FILE, TokenizerMismatch, diff_tokens
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
    same = diff_tokens(tuned, tuned, examples, tmp_path / "same")
    assert max(pq.read_table(same / TOKENS_FILE).column("kl").to_pylist()) < 1e-6
    assert pq.read_table(same / TOKENS_FILE).column("rank_base").to_pylist() == table["rank_tuned"]


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
