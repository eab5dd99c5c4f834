"""The heads and FFN steps stream a model's layers: given a model by name (a safetensors directory), they read
one layer's tensors at a time and never build the whole model, and give what a loaded model gives."""

from __future__ import annotations

import pyarrow.parquet as pq
import pytest
from conftest import save_tiny_model

from shiftlens.ffn.pipeline import explain_ffn
from shiftlens.ffn.settings import FfnSettings
from shiftlens.heads.pipeline import explain_heads
from shiftlens.heads.settings import HeadsSettings
from shiftlens.models import ModelSpec, load_model


@pytest.fixture
def model_dir(tmp_path):
    _, tokenizer = save_tiny_model(tmp_path / "model")
    words = sorted({t.lstrip("Ġ") for t in tokenizer.get_vocab() if t.lstrip("Ġ").isalpha()})[:40]
    (tmp_path / "words.tsv").write_text("".join(f"{w}\t{40 - i}\n" for i, w in enumerate(words)))
    return tmp_path / "model", tmp_path / "words.tsv"


@pytest.mark.parametrize("method", ["ffn", "heads"])
def test_a_named_model_is_streamed_not_loaded(model_dir, tmp_path, monkeypatch, method) -> None:
    directory, words = model_dir
    run = {
        "ffn": lambda model, out: explain_ffn(model, words, out, FfnSettings(components=4, top_k=3)),
        "heads": lambda model, out: explain_heads(model, words, out, HeadsSettings(top_k=5, cooccurrence="none")),
    }[method]
    table = {"ffn": "concepts.parquet", "heads": "heads.parquet"}[method]
    loaded = run(load_model(str(directory)), tmp_path / "loaded")

    def refuse(self):
        raise AssertionError("the whole model was loaded")

    monkeypatch.setattr(ModelSpec, "load", refuse)
    streamed = run(ModelSpec(str(directory), device="cpu"), tmp_path / "streamed")
    a, b = (pq.read_table(d / table).to_pylist() for d in (loaded, streamed))
    assert repr(a) == repr(b) and len(a) > 0  # repr: NaN similarities (no co-occurrence) compare equal
