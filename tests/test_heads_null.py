"""The head-overlap null on tiny saved models: exact when nothing changed, quiet for a random update, and
an update concentrated where the words live is found below the band; plus its errors and its CLI."""

from __future__ import annotations

import json
import re
import shutil

import numpy as np
import pytest
import torch
from conftest import TOKENIZER_TEXT, save_tiny_model
from scipy import stats as scipy_stats
from transformers import AutoModelForCausalLM

from shiftlens.analysis.heads import HeadsAnalysisSettings, analyze_heads
from shiftlens.cli.main import main
from shiftlens.heads import explain_heads
from shiftlens.heads.knowledge import HeadsAnalysisError
from shiftlens.heads.null import NullSettings, overlap_null
from shiftlens.heads.settings import HeadsSettings as RunSettings  # the analysis' is HeadsSettings here
from shiftlens.vocabulary import load_vocabulary

WORDS = sorted({w for line in TOKENIZER_TEXT for w in re.findall(r"[A-Za-z]+", line)})
OPTIONS = {"top_k": 8, "cooccurrence": "none", "max_pairs": 20}


def updated_copy(root, name: str, kind: str, tokenizer, vocab) -> None:
    """The base with every W_q/W_k row moved by half its norm: in a random direction, or along the words'
    first principal direction (so the change lands where the word vectors vary most)."""
    model = AutoModelForCausalLM.from_pretrained(root / "base")
    gen = torch.Generator().manual_seed(5)
    embeddings = model.get_input_embeddings().weight.detach()
    top = torch.linalg.svd(load_vocabulary(vocab, tokenizer).vectors(embeddings), full_matrices=False).Vh[0]
    with torch.no_grad():
        for layer in model.model.layers:
            for weight in (layer.self_attn.q_proj.weight, layer.self_attn.k_proj.weight):
                if kind == "random":
                    direction = torch.randn(weight.shape, generator=gen)
                    direction /= direction.norm(dim=1, keepdim=True)
                else:
                    direction = torch.sign(torch.randn(weight.shape[0], 1, generator=gen)) * top[None, :]
                weight += 0.5 * weight.norm(dim=1, keepdim=True) * direction
    model.save_pretrained(root / name)
    tokenizer.save_pretrained(root / name)


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Heads runs of a tiny llama (GQA), an identical copy, a randomly and a structurally updated model."""
    root = tmp_path_factory.mktemp("null")
    _, tokenizer = save_tiny_model(root / "base", "llama", seed=3)
    vocab = root / "words.tsv"
    vocab.write_text("".join(f"{w}\t{1.0 / (i + 1)}\n" for i, w in enumerate(WORDS)))
    shutil.copytree(root / "base", root / "same")
    for kind in ("random", "structured"):
        updated_copy(root, kind, kind, tokenizer, vocab)
    for name in ("base", "same", "random", "structured"):
        explain_heads(str(root / name), vocab, root / f"run-{name}", RunSettings(**OPTIONS))
    return root, vocab


def test_no_update_gives_the_base_pairs_back_exactly(runs):
    root, vocab = runs
    bands = overlap_null(root / "run-base", root / "run-same", NullSettings(3, vocab=str(vocab)))
    assert [band["layer"] for band in bands] == [0, 1]
    assert all(band["draws"] == [1.0, 1.0, 1.0] for band in bands)
    result = analyze_heads(root / "run-base", root / "run-same", ["write"], ["poem"], null=NullSettings(5))
    overlap = result["finding"][-1]
    assert overlap["testable"] is False and overlap["reason"] == "null draws: zero variance (all 1)"


def test_a_random_update_stays_inside_the_band_and_a_structured_one_falls_below(runs):
    root, vocab = runs
    null = NullSettings(20, seed=1, vocab=str(vocab))
    random = analyze_heads(root / "run-base", root / "run-random", ["write"], ["poem"], null=null)
    for band in random["head_overlap_null"]:
        assert band["min"] <= band["observed"] <= band["max"] and len(band["draws"]) == 20
        assert band["q05"] <= band["mean"] <= band["q95"]
    assert random["finding"][-1]["significant"] is False and random["finding"][-1]["p_value"] > 0.2
    structured = analyze_heads(root / "run-base", root / "run-structured", ["write"], ["poem"], null=null)
    for band in structured["head_overlap_null"]:
        assert band["observed"] < band["min"] - 0.05
    finding = structured["finding"][-1]
    null_means = np.mean([band["draws"] for band in structured["head_overlap_null"]], axis=0)
    observed = np.mean([band["observed"] for band in structured["head_overlap_null"]])
    t = (null_means.mean() - observed) / (null_means.std(ddof=1) * np.sqrt(1 + 1 / 20))  # the prediction test
    assert finding["significant"] and finding["p_value"] == pytest.approx(scipy_stats.t.sf(t, 19))
    assert finding["p_value"] < 1 / 21  # finer than the draws' rank p
    assert finding["effect_size"] < 0 and finding["ci"][1] < 0
    assert structured["null"]["draws"] == 20 and "word vectors" in structured["null"]["perturbed"]
    json.dumps(structured.to_json(), allow_nan=False)


def test_draws_are_reproducible_from_the_seed(runs):
    root, vocab = runs
    again = [overlap_null(root / "run-base", root / "run-random", NullSettings(3, seed=s)) for s in (7, 7, 8)]
    assert again[0] == again[1] and again[0] != again[2]


def test_null_errors_are_one_line(runs, tmp_path):
    root, vocab = runs
    explain_heads(str(root / "random"), vocab, tmp_path / "other", RunSettings(**{**OPTIONS, "top_k": 5}))
    with pytest.raises(HeadsAnalysisError, match="the runs differ in top_k"):
        overlap_null(root / "run-base", tmp_path / "other", NullSettings(2))
    with pytest.raises(HeadsAnalysisError, match="are not those .*run-base was computed from"):
        overlap_null(root / "run-base", root / "run-random", NullSettings(2, base_model=str(root / "random")))
    (tmp_path / "changed.tsv").write_text("write\t1.0\n")
    with pytest.raises(HeadsAnalysisError, match="not the one the runs used"):
        overlap_null(root / "run-base", root / "run-random", NullSettings(2, vocab=str(tmp_path / "changed.tsv")))
    with pytest.raises(HeadsAnalysisError, match="at least 1"):
        overlap_null(root / "run-base", root / "run-random", NullSettings(0))


def test_cli_writes_the_band_beside_the_observed_overlap(runs, tmp_path, capsys):
    root, vocab = runs
    args = ["analyze", "heads", str(root / "run-base"), str(root / "run-random"), "--null-draws", "5"]
    assert main([*args, "--vocab", str(vocab), "--json", str(tmp_path / "r.json"), "--out", str(tmp_path)]) == 0
    result = json.loads((tmp_path / "r.json").read_text())
    assert [len(band["draws"]) for band in result["head_overlap_null"]] == [5, 5]
    observed = [entry["mean"] for entry in result["head_overlap_by_layer"]]
    assert [band["observed"] for band in result["head_overlap_null"]] == observed
    assert "layer 1: overlap" in capsys.readouterr().out
    assert np.isfinite(result["finding"][-1]["p_value"])
    assert (
        result
        == analyze_heads(
            root / "run-base",
            root / "run-random",
            settings=HeadsAnalysisSettings(),
            null=NullSettings(5, vocab=str(vocab)),
        ).to_json()
    )
