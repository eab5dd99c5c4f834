"""`explain_ffn` and `shiftlens ffn` on tiny models (results, formats, resumption, errors); SmolLM2 (slow)."""

from __future__ import annotations

import json

import numpy as np
import pyarrow.parquet as pq
import pytest
import torch
from conftest import save_tiny_model, tiny_model, tiny_tokenizer
from support.shards import whole_and_sharded

from shiftlens.cli.main import main
from shiftlens.errors import ShiftlensError
from shiftlens.ffn import pipeline
from shiftlens.ffn.core import principal_components
from shiftlens.ffn.pipeline import explain_ffn
from shiftlens.ffn.records import read_ffn_run
from shiftlens.ffn.settings import FfnSettings
from shiftlens.ffn.sizing import default_components
from shiftlens.models import LoadedModel, load_model

WORDS = ["the", "sea", "cat", "poem", "text", "word", "river", "happy", "French", "sentence", "mat", "short"]


@pytest.fixture()
def vocab(tmp_path):
    path = tmp_path / "vocab.tsv"
    path.write_text("".join(f"{w}\t{1.0 / (i + 1)}\n" for i, w in enumerate(WORDS)))
    return path


@pytest.fixture()
def tiny_dir(tmp_path):
    directory = tmp_path / "model"
    save_tiny_model(directory, "llama", seed=3)
    return directory


def word_token_ids(tokenizer, word: str) -> list[int]:
    """The word's subtokens with a leading space, lone space tokens dropped (the vocabulary rule)."""
    ids = tokenizer(" " + word, add_special_tokens=False)["input_ids"]
    return [t for t in ids if tokenizer.decode([t]).strip()]


def literal_scores(component: np.ndarray, unembed: torch.Tensor, token_ids: list[int]) -> float:
    """Score of one word, written out: component · mean unembedding row / its norm."""
    vector = unembed[token_ids].double().mean(0).numpy()
    return float(component.astype(np.float64) @ vector / np.linalg.norm(vector))


def test_explain_ffn_stores_pca_words_and_tables(tiny_dir, vocab, tmp_path):
    loaded = load_model(str(tiny_dir))
    assert loaded.weights_dir is not None  # streams from safetensors
    out = explain_ffn(loaded, vocab, tmp_path / "run", FfnSettings(components=10, top_k=5))
    run = read_ffn_run(out)
    assert sorted(run.layers) == [0, 1]
    unembed = loaded.model.lm_head.weight.detach()
    for layer in (0, 1):
        down = loaded.model.model.layers[layer].mlp.down_proj.weight.detach()  # hidden × intermediate
        reference = principal_components(down.T, 10)
        record = run.layers[layer]
        cos = np.abs((record.components * reference.components.numpy()).sum(axis=1))
        assert cos.min() >= 0.9999
        np.testing.assert_allclose(record.explained_variance_ratio, reference.explained_variance_ratio.numpy())
        for component in range(10):
            ids = [word_token_ids(loaded.tokenizer, w) for w in run.words]
            scores = [literal_scores(record.components[component], unembed, t) for t in ids]
            expected = np.argsort(-np.abs(scores), kind="stable")[:5]
            assert set(record.top_indices[component]) == set(expected)
            np.testing.assert_allclose(
                record.top_scores[component], np.array(scores)[record.top_indices[component]], atol=1e-5
            )
            assert record.top_scores[component, 0] > 0  # sign rule
    table = pq.read_table(out / "concepts.parquet").to_pylist()
    assert len(table) == 20 and table[0]["layer"] == 0 and len(table[0]["words"]) == 5
    assert table[11]["words"] == run.top_words(1, 1)
    lines = (out / "concepts.tsv").read_text().splitlines()
    assert len(lines) == 21 and lines[1].split("\t")[3:] == table[0]["words"]
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["complete"] and "largest-|score|" in manifest["sign_rule"]


def test_resume_recomputes_only_missing_layers(tiny_dir, vocab, tmp_path, monkeypatch):
    loaded = load_model(str(tiny_dir))
    out = explain_ffn(loaded, vocab, tmp_path / "run", FfnSettings(components=6, top_k=4))
    before = read_ffn_run(out)
    (out / "units" / "layer-0001.json").unlink()  # as if killed before layer 1 was recorded
    calls = []
    original = pipeline.explain_layer
    monkeypatch.setattr(pipeline, "explain_layer", lambda *a, **k: calls.append(1) or original(*a, **k))
    explain_ffn(loaded, vocab, tmp_path / "run", FfnSettings(components=6, top_k=4))
    assert len(calls) == 1
    after = read_ffn_run(out)
    np.testing.assert_array_equal(after.layers[1].components, before.layers[1].components)
    explain_ffn(loaded, vocab, tmp_path / "run", FfnSettings(components=6, top_k=4))
    assert len(calls) == 1


def test_conv1d_family_through_the_architecture_map(vocab, tmp_path):
    """GPT-2 stores Conv1D weights (in, out): the rows must still be the neurons' output vectors."""
    tokenizer = tiny_tokenizer()
    model = tiny_model("gpt2", seed=1, vocab_size=len(tokenizer))
    loaded = LoadedModel(model, tokenizer, "tiny-gpt2", "h", "float32", "cpu")
    out = explain_ffn(loaded, vocab, tmp_path / "gpt2", FfnSettings(components=5, top_k=3, layers=[1]))
    rows = model.transformer.h[1].mlp.c_proj.weight.detach()  # (intermediate, hidden) already
    reference = principal_components(rows, 5).components.numpy()
    stored = read_ffn_run(out).layers[1].components
    assert np.abs((stored * reference).sum(axis=1)).min() >= 0.9999


def test_cli_runs_and_refuses_bad_inputs(tiny_dir, vocab, tmp_path, capsys):
    out = tmp_path / "cli"
    args = ["ffn", "--model", str(tiny_dir), "--vocab", str(vocab), "--out", str(out), "--components", "4"]
    assert main([*args, "--layers", "1"]) == 0
    assert (out / "concepts.parquet").exists()
    assert main([*args, "--layers", "0"]) == 0  # more layers extend the run, as in a heads run
    assert sorted(read_ffn_run(out).layers) == [0, 1]
    assert main([*args, "--layers", "0", "--top-k", "3"]) == 2  # other parameters than the existing run
    assert "other settings (top_k: " in capsys.readouterr().err
    assert main([*args[:-2], "--out", str(tmp_path / "x"), "--layers", "5"]) == 2
    assert "layers [5] out of range: the model has layers 0..1" in capsys.readouterr().err
    assert main([*args[:-2], "--out", str(tmp_path / "y"), "--layers", "1-a"]) == 2
    assert "--layers takes indices" in capsys.readouterr().err
    assert (
        main(
            [
                "ffn",
                "--model",
                str(tiny_dir),
                "--vocab",
                str(tmp_path / "none.tsv"),
                "--out",
                str(tmp_path / "z"),
            ]
        )
        == 2
    )
    assert "none.tsv does not exist" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("hidden", "expected"), [(1, 1), (32, 2), (256, 19), (576, 42), (2048, 150), (4096, 300), (8192, 600)]
)
def test_default_r_is_the_papers_fraction_of_the_hidden_size(hidden, expected):
    assert default_components(hidden) == expected == max(1, int(300 * hidden / 4096 + 0.5))


def test_r_is_sized_to_the_model_recorded_and_never_capped(tiny_dir, vocab, tmp_path, capsys):
    loaded = load_model(str(tiny_dir))  # hidden 32
    run = read_ffn_run(explain_ffn(loaded, vocab, tmp_path / "default", FfnSettings(top_k=3)))
    assert {record.components.shape for record in run.layers.values()} == {(2, 32)}
    assert run.manifest["params"]["components"] == 2 and run.manifest["hidden"] == 32
    assert run.manifest["components_rule"].startswith("R = round(300 / 4096 x hidden)")
    with pytest.raises(ShiftlensError, match="--components 300 exceeds the hidden size 32.*at most 15 for a rotation"):
        explain_ffn(loaded, vocab, tmp_path / "big", FfnSettings(components=300))
    assert not (tmp_path / "big").exists()
    assert main(["ffn", "--model", str(tiny_dir), "--vocab", str(vocab), "--out", str(tmp_path / "cli")]) == 0
    assert "R = 2 components per layer of hidden size 32" in capsys.readouterr().out
    args = ["ffn", "--model", str(tiny_dir), "--vocab", str(vocab), "--out", str(tmp_path / "c2"), "--components"]
    assert main([*args, "33"]) == 2
    assert "--components 33 exceeds the hidden size 32" in capsys.readouterr().err
    assert main([*args, "0"]) == 2
    assert "--components must be at least 1" in capsys.readouterr().err


@pytest.mark.slow
def test_smollm2_components_agree_with_full_svd(smollm2, paper_data, tmp_path):
    vocab = paper_data / "datasets" / "SingleShareGPT_Vocab.tsv"
    out = explain_ffn(
        smollm2, vocab, tmp_path / "smol", FfnSettings(components=300, top_k=50, layers=[0, 29], vocab_top=3000)
    )
    run = read_ffn_run(out)
    for layer in (0, 29):
        rows = smollm2.model.model.layers[layer].mlp.down_proj.weight.detach().T.double()
        _, _, vh = torch.linalg.svd(rows - rows.mean(0), full_matrices=False)
        cos = np.abs((run.layers[layer].components * vh[:300].numpy()).sum(axis=1))
        assert cos.min() >= 0.9999
        assert run.layers[layer].top_indices.shape == (300, 50)


def test_two_shards_then_merge_equal_one_whole_run(tiny_dir, vocab, tmp_path):
    loaded, settings = load_model(str(tiny_dir)), FfnSettings(components=4, top_k=3)
    dirs = whole_and_sharded(
        lambda out, **k: explain_ffn(loaded, vocab, out, settings, **k), tmp_path, "concepts.parquet"
    )
    whole, sharded = (read_ffn_run(d) for d in dirs)  # a layer in each shard
    for key in ("params", "counts", "failed", "model", "vocabulary", "hidden"):
        assert whole.manifest[key] == sharded.manifest[key], key
    assert whole.words == sharded.words and sorted(whole.layers) == sorted(sharded.layers) == [0, 1]
    for layer, record in whole.layers.items():
        np.testing.assert_array_equal(record.components, sharded.layers[layer].components)
        np.testing.assert_array_equal(record.top_indices, sharded.layers[layer].top_indices)
    for name in ("concepts.parquet", "concepts.tsv"):
        assert (tmp_path / "whole" / name).read_bytes() == (tmp_path / "sharded" / name).read_bytes()
