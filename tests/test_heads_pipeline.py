"""`explain_heads` and `shiftlens heads`: streaming from files, output vs reference, resume, errors."""

from __future__ import annotations

import json
import re

import numpy as np
import pyarrow.parquet as pq
import pytest
from conftest import TOKENIZER_TEXT, save_tiny_model
from support.shards import whole_and_sharded

import shiftlens.heads.pipeline as pipeline
from shiftlens.architecture import attention_qk
from shiftlens.cli.main import main
from shiftlens.ffn.pipeline import explain_ffn
from shiftlens.ffn.settings import FfnSettings
from shiftlens.heads.cooccurrence import word_vectors
from shiftlens.heads.pipeline import HeadsError, explain_heads
from shiftlens.heads.records import read_pair_rows
from shiftlens.heads.reference import reference_explain_layer
from shiftlens.heads.settings import HeadsSettings
from shiftlens.models import ModelSpec, ModuleWeights
from shiftlens.options import LayerError
from shiftlens.runs import WrongRunKind
from shiftlens.storage import StorageError, read_manifest
from shiftlens.vocabulary import load_vocabulary

WORDS = sorted({w for line in TOKENIZER_TEXT for w in re.findall(r"[A-Za-z]+", line)})


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    """A tiny llama (GQA) saved as safetensors, a word list and a GloVe-format vector file."""
    root = tmp_path_factory.mktemp("heads")
    model, tokenizer = save_tiny_model(root / "model", "llama", seed=3)
    vocab = root / "words.tsv"
    vocab.write_text("".join(f"{w}\t{1.0 / (i + 1)}\n" for i, w in enumerate(WORDS)) + "\t0.0001\n")
    rng = np.random.default_rng(0)
    glove = root / "glove.txt"
    glove.write_text(
        "".join(f"{w.lower()} " + " ".join(f"{x:.5f}" for x in rng.normal(size=4)) + "\n" for w in WORDS[:-3])
    )
    return root, model, tokenizer, vocab, glove


def run(setup, out, **kwargs):
    root, _, _, vocab, glove = setup
    kwargs.setdefault("cooccurrence", f"glove:{glove}")
    path = explain_heads(str(root / "model"), vocab, out, HeadsSettings(top_k=6, reference_words=10, z=0.5, **kwargs))
    assert path == out
    manifest = read_manifest(out)
    return {**manifest["results"], "cooccurrence": manifest["cooccurrence"]}


def test_output_matches_the_reference_for_every_head(setup, tmp_path, monkeypatch):
    root, model, tokenizer, vocab, glove = setup
    monkeypatch.setattr(ModelSpec, "load", lambda *a, **k: pytest.fail("a directory must stream, not load"))
    summary = run(setup, tmp_path / "out")
    assert summary["layers_done"] == [0, 1] and summary["n_pairs"] > 20
    assert summary["cooccurrence"]["n_without_vector"] == 3

    vocabulary = load_vocabulary(vocab, tokenizer)
    words = vocabulary.vectors(model.get_input_embeddings().weight.detach())
    vectors = word_vectors(f"glove:{glove}", vocabulary.words)
    table = pq.read_table(tmp_path / "out" / "heads.parquet").to_pylist()
    assert {row["model"] for row in table} == {str(root / "model")}
    for layer in (0, 1):
        wq, wk = attention_qk(ModuleWeights(model), model.config, layer)
        reference = reference_explain_layer(
            words, wq, wk, 6, (vectors.vectors, vectors.present), list(range(10)), z=0.5
        )
        rows = [row for row in table if row["layer"] == layer]
        assert len(rows) == 4 * 8
        for row in rows:
            h, d = row["head"], row["dim"]
            assert reference.rank[h, d] == row["rank"]
            assert row["energy"] == pytest.approx(reference.energy[h, d], rel=1e-9)
            mask = (reference.pair_head == h) & (reference.pair_dim == d)
            expected = [
                (vocabulary.words[q], vocabulary.words[k])
                for q, k in zip(reference.pair_query[mask], reference.pair_key[mask])
            ]
            assert [(p["query"], p["key"]) for p in row["pairs"]] == expected
    tsv = (tmp_path / "out" / "heads.tsv").read_text().splitlines()
    assert tsv[0] == "layer\thead\trank\tdim\tenergy\tpairs"
    first = next(row for row in table if row["pairs"])
    line = next(line for line in tsv[1:] if line.startswith(f"{first['layer']}\t{first['head']}\t{first['rank']}\t"))
    # The authors' order: key first, then query (their released heads files read `key=query`).
    assert line.split("\t")[5].split("|||")[0] == f"{first['pairs'][0]['key']}={first['pairs'][0]['query']}"
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert manifest["cooccurrence"]["backend"] == "glove" and manifest["params"]["top_k"] == 6
    assert manifest["vocabulary"]["n_skipped"] == 0


def test_rerun_recomputes_no_layer_and_extends_to_new_layers(setup, tmp_path, monkeypatch):
    calls = []
    real = pipeline.explain_layer
    monkeypatch.setattr(pipeline, "explain_layer", lambda *a, **k: calls.append(1) or real(*a, **k))
    first = run(setup, tmp_path / "out", layers=[1])
    assert first["layers_done"] == [1] and len(calls) == 1
    before = (tmp_path / "out" / "units" / "layer-0001.safetensors").stat().st_mtime_ns
    again = run(setup, tmp_path / "out", layers=[1])
    assert again["layers_done"] == [1] and len(calls) == 1
    assert (tmp_path / "out" / "units" / "layer-0001.safetensors").stat().st_mtime_ns == before
    more = run(setup, tmp_path / "out")
    assert more["layers_done"] == [0, 1] and len(calls) == 2  # a run with more layers extends the run


def test_a_failing_layer_keeps_the_finished_ones(setup, tmp_path, monkeypatch):
    real = pipeline.explain_layer

    def fail_on_second(*args, **kwargs):
        if fail_on_second.calls:
            raise RuntimeError("killed")
        fail_on_second.calls += 1
        return real(*args, **kwargs)

    fail_on_second.calls = 0
    monkeypatch.setattr(pipeline, "explain_layer", fail_on_second)
    with pytest.raises(RuntimeError):
        run(setup, tmp_path / "out")
    monkeypatch.setattr(pipeline, "explain_layer", lambda *a, **k: fail_on_second.calls.append(1) or real(*a, **k))
    fail_on_second.calls = []
    assert run(setup, tmp_path / "out")["layers_done"] == [0, 1] and len(fail_on_second.calls) == 1


def test_changed_parameters_and_bad_settings_are_refused(setup, tmp_path):
    run(setup, tmp_path / "out", layers=[0], cooccurrence="none", max_pairs=3)
    with pytest.raises(StorageError, match="other settings.*max_pairs: 3 → 4"):
        run(setup, tmp_path / "out", layers=[0], cooccurrence="none", max_pairs=4)
    with pytest.raises(LayerError, match=r"layers \[2\] out of range: the model has layers 0..1"):
        run(setup, tmp_path / "other", layers=[0, 2])
    with pytest.raises(HeadsError, match="at least 1"):
        run(setup, tmp_path / "other", max_pairs=0)


def test_none_backend_caps_pairs_and_ranks_by_score(setup, tmp_path):
    run(setup, tmp_path / "out", layers=[0], cooccurrence="none", max_pairs=3)
    rows = pq.read_table(tmp_path / "out" / "heads.parquet").to_pylist()
    assert all(len(row["pairs"]) <= 3 for row in rows) and any(len(row["pairs"]) == 3 for row in rows)
    for row in rows:
        scores = [p["score"] for p in row["pairs"]]
        assert scores == sorted(scores, reverse=True) and all(s > 0 for s in scores)
        assert all(p["similarity"] is None or np.isnan(p["similarity"]) for p in row["pairs"])


def test_gpt2_conv1d_checkpoint_streams(tmp_path):
    model, tokenizer = save_tiny_model(tmp_path / "gpt2", "gpt2", seed=1)
    vocab = tmp_path / "words.txt"
    vocab.write_text("\n".join(WORDS))
    out = explain_heads(
        str(tmp_path / "gpt2"), vocab, tmp_path / "out", HeadsSettings(top_k=5, cooccurrence="none", layers=[1])
    )
    summary = read_manifest(out)["results"]
    vocabulary = load_vocabulary(vocab, tokenizer)
    wq, wk = attention_qk(ModuleWeights(model), model.config, 1)
    reference = reference_explain_layer(vocabulary.vectors(model.get_input_embeddings().weight), wq, wk, 5)
    assert summary["n_pairs"] == len(reference.pair_dim) > 0


def test_cli_runs_and_reports_errors_on_one_line(setup, tmp_path, capsys):
    root, _, _, vocab, glove = setup
    args = ["heads", "--model", str(root / "model"), "--vocab", str(vocab), "--candidates", "4"]
    assert main([*args, "--out", str(tmp_path / "out"), "--cooccurrence", f"glove:{glove}", "--layers", "0-1"]) == 0
    assert "2 layers stored" in capsys.readouterr().out
    assert main([*args, "--out", str(tmp_path / "bad"), "--cooccurrence", "glov:x"]) == 2
    last = capsys.readouterr().err.splitlines()[-1]  # after the "device: ..." line, once per process
    assert last.startswith("shiftlens: error: unknown co-occurrence backend 'glov:x'")
    assert not (tmp_path / "bad").exists()  # refused before any output
    assert main([*args, "--out", str(tmp_path / "bad2"), "--vocab", str(tmp_path / "none.tsv")]) == 2
    assert "none.tsv does not exist" in capsys.readouterr().err


@pytest.mark.slow
def test_smollm2_layer_matches_the_reference(smollm2, paper_data, tmp_path):
    vocab = paper_data / "datasets" / "SingleShareGPT_Vocab.tsv"
    settings = HeadsSettings(top_k=20, cooccurrence="none", layers=[29], top_n=2000, max_pairs=10)
    summary = read_manifest(explain_heads(smollm2, vocab, tmp_path / "out", settings))["results"]
    assert summary["layers_done"] == [29] and 0 < summary["n_pairs"] <= 9 * 64 * 10
    vocabulary = load_vocabulary(vocab, smollm2.tokenizer, top_n=2000)
    words = vocabulary.vectors(smollm2.model.get_input_embeddings().weight)
    wq, wk = attention_qk(ModuleWeights(smollm2.model), smollm2.model.config, 29)
    reference = reference_explain_layer(words, wq, wk, 20, max_pairs=10, heads=[4])
    rows = pq.read_table(tmp_path / "out" / "heads.parquet").to_pylist()
    for row in (r for r in rows if r["head"] == 4):
        mask = reference.pair_dim == row["dim"]
        assert reference.rank[0, row["dim"]] == row["rank"]
        assert [(p["query"], p["key"]) for p in row["pairs"]] == [
            (vocabulary.words[q], vocabulary.words[k])
            for q, k in zip(reference.pair_query[mask], reference.pair_key[mask])
        ]


def test_two_shards_then_merge_equal_one_whole_run(setup, tmp_path):
    root, _, _, vocab, glove = setup
    settings = HeadsSettings(top_k=6, reference_words=10, z=0.5, cooccurrence=f"glove:{glove}")
    model = str(root / "model")
    explain = lambda out, **k: explain_heads(model, vocab, out, settings, **k)  # noqa: E731
    whole, sharded = (read_manifest(d) for d in whole_and_sharded(explain, tmp_path, "heads.parquet", (1, 0)))
    for key in ("params", "counts", "failed", "results", "cooccurrence", "model", "vocabulary"):
        assert whole[key] == sharded[key], key
    tables = [pq.read_table(tmp_path / name / "heads.parquet") for name in ("whole", "sharded")]
    assert tables[0].equals(tables[1]) and tables[0].num_rows > 0
    assert (tmp_path / "whole" / "heads.tsv").read_text() == (tmp_path / "sharded" / "heads.tsv").read_text()


def test_a_heads_reader_refuses_another_kind_of_run(setup, tmp_path):
    root, _, _, vocab, _ = setup
    explain_ffn(str(root / "model"), vocab, tmp_path / "ffn", FfnSettings(components=2, top_k=2))
    with pytest.raises(WrongRunKind, match=f"^{tmp_path / 'ffn'} is a ffn run, not a heads run$"):
        read_pair_rows(tmp_path / "ffn")


def test_a_layer_failing_with_a_clear_error_is_listed_and_the_command_exits_2(setup, tmp_path, monkeypatch, capsys):
    root, _, _, vocab, _ = setup
    real = pipeline.explain_layer

    def fail_on_layer_1(words, wq, *args, **kwargs):
        if fail_on_layer_1.calls:
            raise HeadsError("layer too strange")
        fail_on_layer_1.calls += 1
        return real(words, wq, *args, **kwargs)

    fail_on_layer_1.calls = 0
    monkeypatch.setattr(pipeline, "explain_layer", fail_on_layer_1)
    out = tmp_path / "out"
    argv = ["heads", "--model", str(root / "model"), "--vocab", str(vocab), "--out", str(out), "--cooccurrence", "none"]
    assert main(argv) == 2
    assert "1 of 2 layers failed" in capsys.readouterr().err
    manifest = read_manifest(out)
    assert manifest["failed"] == {"layer-0001": "layer too strange"} and manifest["results"]["layers_done"] == [0]
    monkeypatch.setattr(pipeline, "explain_layer", real)
    assert main(argv) == 0 and read_manifest(out)["results"]["layers_done"] == [0, 1]
