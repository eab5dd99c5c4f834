"""The offline lexical annotator: WordNet lookups, deterministic labels on hand words, marked heuristic."""

from __future__ import annotations

import json

import numpy as np
import pyarrow.parquet as pq
import pytest
from test_ffn_analysis import write_fake_ffn_run

from shiftlens.cli.main import main
from shiftlens.ffn.lexical import LexicalAnnotator


@pytest.fixture(scope="module")
def annotator():
    return LexicalAnnotator()


def test_wordnet_first_sense_lexnames(annotator):
    wordnet = annotator.lexnames
    assert wordnet.lexname("dog") == "noun.animal"
    assert wordnet.lexname("dogs") == "noun.animal"  # detachment rule
    assert wordnet.lexname("ran") == "verb.motion"  # exception list, verb sense most tagged
    assert wordnet.lexname("bread") == "noun.food"
    assert wordnet.lexname("quickly") == "adv.all"
    assert wordnet.lexname("xqzzv") is None


HAND = [
    (["apple", "banana", "cherry", "bread", "cheese", "soup", "rice", "plum", "milk", "tea", "cake", "pie",
      "salt", "egg", "table"], "food (nouns)", ["daily writing"], "semantics"),
    (["walking", "running", "jumped", "the", "of", "sings", "eating", "reading", "writing", "cooking",
      "talking", "swimming", "and", "drawing", "x"], "words ending in -ing", ["daily writing"], "morphology"),
    (["the", "of", "and", "to", "in", "for", "with", "on", "by", "at", "from", "cat", "dog", "run", "is"],
     "function words", [], "syntax"),
    (["def", "return", "self.app", "x_1", "import", "lambda", "None", "int", "dog", "cat", "tree", "printf",
      "class", "main", "foo"], "code tokens", ["coding"], "semantics"),
    (["가치", "관리", "우리", "이다", "hello", "Nós", "bebês", "über", "été", "naïve", "dog", "cat", "tree",
      "sun", "moon"], "non-English words", ["translation"], "semantics"),
    (["1", "2", "3.5", "100", "seven", "twenty", "half", "dog", "cat", "sum", "7", "8", "9", "x", "y"],
     "numbers", ["math"], "semantics"),
]  # fmt: skip


@pytest.mark.parametrize(("words", "concept", "tasks", "level"), HAND)
def test_hand_word_lists(annotator, words, concept, tasks, level):
    label = annotator.label(words)
    assert (label.concept, label.tasks, label.level) == (concept, tasks, level)
    assert label.status == {"concept": "ok", "tasks": "ok", "level": "ok"}
    assert LexicalAnnotator(annotator.lexnames).label(list(words), run=3) == label  # deterministic


def test_mixed_list_cannot_be_named(annotator):
    words = ["Tami", "upstream", "anthem", "piracy", "deer", "lower", "encyclopedia", "bir", "gamma",
             "gentle", "sink", "tomorrow", "seldom", "violet", "Oslo"]  # fmt: skip
    label = annotator.label(words)
    assert label.concept is None and not label.nameable and label.status["tasks"] == "skipped"


def test_cli_marks_the_labels_heuristic_everywhere(tmp_path, capsys):
    rng = np.random.default_rng(1)
    write_fake_ffn_run(tmp_path / "ffn", {0: np.linalg.qr(rng.standard_normal((40, 4)))[0].T}, n_layers=1)
    assert main(["annotate", str(tmp_path / "ffn"), "--annotator", "lexical", "--runs", "5"]) == 0
    assert "HEURISTIC" in capsys.readouterr().out
    out = tmp_path / "ffn" / "annotations"
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["heuristic"] is True and manifest["params"]["runs"] == 1
    assert "HEURISTIC" in manifest["params"]["annotator"]["note"]
    assert json.loads((out / "summary.json").read_text())["heuristic"] is True
    rows = pq.read_table(out / "labels.parquet").to_pylist()
    assert len(rows) == 4 and all(r["heuristic"] for r in rows)
    assert main(["annotate", str(tmp_path / "ffn")]) == 2
    assert "needs --annotator-endpoint and --annotator-model" in capsys.readouterr().err
