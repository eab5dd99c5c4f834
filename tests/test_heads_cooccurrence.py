"""Co-occurrence backends: GloVe text files, PPMI against a literal count, spec errors, the cache."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.sparse as sp

from shiftlens.heads.cooccurrence import (
    CooccurrenceError,
    cooccurrence_counts,
    ppmi,
    ppmi_vectors,
    read_text_vectors,
    svd_vectors,
    tokenize_corpus,
    word_vectors,
)

CORPUS = [
    "The cat sat on the mat, and the dog sat on the log.",
    "A dog's life: the dog ate; the cat slept.",
    "",
    "Cats and dogs are pets.",
]


def test_glove_file_vectors_thresholds_and_lookup(tmp_path):
    path = tmp_path / "vectors.txt"
    path.write_text("3 2\nking 1 0\nqueen 0.6 0.8\napple 0 -2\nunused 5 5\n")  # word2vec header
    vectors = word_vectors(f"glove:{path}", ["King", "queen", "pear", "apple"])
    np.testing.assert_allclose(vectors.vectors.numpy(), [[1, 0], [0.6, 0.8], [0, 0], [0, -1]])
    assert vectors.present.tolist() == [True, True, False, True]  # "King" found lower-cased
    assert vectors.manifest()["n_without_vector"] == 1
    assert set(read_text_vectors(path, {"apple"})) == {"apple"}


def test_glove_file_errors_name_file_and_line(tmp_path):
    path = tmp_path / "bad.txt"
    path.write_text("a 1 2 3\nb 1 2\n")
    with pytest.raises(CooccurrenceError, match=r"bad\.txt:2: 2 values where earlier lines had 3"):
        word_vectors(f"glove:{path}", ["a", "b"])
    path.write_text("a 1 x\n")
    with pytest.raises(CooccurrenceError, match=r"bad\.txt:1: a value is not a number"):
        read_text_vectors(path)
    with pytest.raises(CooccurrenceError, match="does not exist"):
        word_vectors(f"glove:{tmp_path / 'missing.txt'}", ["a"])


@pytest.mark.parametrize("spec", ["glove", "word2vec:x", "ppmi:", "nonee"])
def test_unknown_specs_are_refused(spec):
    with pytest.raises(CooccurrenceError, match="unknown co-occurrence backend"):
        word_vectors(spec, ["a"])


def test_none_means_no_filter_and_st_needs_its_package():
    """sentence-transformers is optional; without it the error says how to install it."""
    assert word_vectors("none", ["a"]) is None
    try:
        import sentence_transformers  # noqa: F401
    except ImportError:
        with pytest.raises(CooccurrenceError, match="pip install sentence-transformers"):
            word_vectors("st:some-model", ["a"])


def literal_counts(documents, window):
    vocab = sorted({t for doc in documents for t in doc})
    counts = {}
    for doc in documents:
        for i, word in enumerate(doc):
            for j in range(max(0, i - window), min(len(doc), i + window + 1)):
                if j != i:
                    counts[(word, doc[j])] = counts.get((word, doc[j]), 0) + 1
    return vocab, counts


def test_counts_and_ppmi_match_a_literal_computation():
    documents = tokenize_corpus(CORPUS)
    assert documents[1][:3] == ["a", "dog's", "life"] and documents[2] == []
    words, matrix = cooccurrence_counts(documents, window=2)
    vocab, counts = literal_counts(documents, 2)
    assert sorted(words) == vocab
    dense = matrix.toarray()
    for a, wa in enumerate(words):
        for b, wb in enumerate(words):
            assert dense[a, b] == counts.get((wa, wb), 0)
    total = sum(counts.values())
    row = {w: sum(n for (x, _), n in counts.items() if x == w) for w in words}
    got = ppmi(matrix).toarray()
    for a, wa in enumerate(words):
        for b, wb in enumerate(words):
            n = counts.get((wa, wb), 0)
            expected = max(0.0, math.log(n * total / (row[wa] * row[wb]))) if n else 0.0
            assert got[a, b] == pytest.approx(expected, abs=1e-12)


def test_min_count_drops_rare_words_before_windows():
    words, matrix = cooccurrence_counts([["a", "rare", "b", "a", "b"]], window=1, min_count=2)
    assert words == ["a", "b"]
    np.testing.assert_array_equal(matrix.toarray(), [[0, 3], [3, 0]])


def test_truncated_svd_keeps_the_similarity_of_the_dense_one():
    rng = np.random.default_rng(0)
    low_rank = rng.random((60, 4)) @ rng.random((4, 60))
    matrix = sp.csr_matrix(low_rank + low_rank.T)
    sparse, dense = svd_vectors(matrix, 8), svd_vectors(matrix, 80)[:, :8]

    def cosines(v):
        v = v / np.linalg.norm(v, axis=1, keepdims=True)
        return v @ v.T

    np.testing.assert_allclose(cosines(sparse), cosines(dense), atol=1e-8)


def test_ppmi_vectors_are_cached_by_corpus_content(tmp_path, monkeypatch):
    monkeypatch.setenv("SHIFTLENS_CACHE", str(tmp_path / "cache"))
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("\n".join(CORPUS * 3))
    words, vectors, info = ppmi_vectors(corpus, dim=3, min_count=1)
    assert len(list((tmp_path / "cache" / "ppmi").glob("*.npz"))) == 1
    again_words, again, _ = ppmi_vectors(corpus, dim=3, min_count=1)
    assert again_words == words and np.array_equal(again, vectors)
    assert info["window"] == 5 and len(info["corpus_sha256"]) == 64
    corpus.write_text("\n".join(CORPUS * 4))
    ppmi_vectors(corpus, dim=3, min_count=1)
    assert len(list((tmp_path / "cache" / "ppmi").glob("*.npz"))) == 2
    vectors = word_vectors(f"ppmi:{corpus}", ["cat", "Dog", "zebra"])
    assert vectors.present.tolist() == [True, True, False]
    assert vectors.backend["backend"] == "ppmi"
    with pytest.raises(CooccurrenceError, match="does not exist"):
        word_vectors(f"ppmi:{tmp_path / 'nope.txt'}", ["cat"])
