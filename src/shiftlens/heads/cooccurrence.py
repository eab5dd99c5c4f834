"""Co-occurrence word vectors that decide which (query, key) word pairs are related.

Backends, chosen by a spec string: ``glove:PATH`` (GloVe or word2vec text format), ``st:NAME_OR_PATH``
(a sentence-transformers static embedding model), ``ppmi:CORPUS`` (positive PMI over a plain-text corpus,
window 5, reduced by truncated SVD and cached; ``ppmi:wordnet`` uses the WordNet glosses) and ``none``
(no co-occurrence filter). Vectors are unit-normalised so that similarity is a dot product (cosine).
"""

from __future__ import annotations

import hashlib
import io
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp
import torch
from scipy.sparse.linalg import svds

from shiftlens.heads.settings import CooccurrenceError, parse_spec
from shiftlens.models import cache_root
from shiftlens.storage import atomic_write_bytes, atomic_write_text
from shiftlens.wordnet import wordnet

_TOKEN = re.compile(r"[a-z]+(?:'[a-z]+)?")


@dataclass
class WordVectors:
    """Unit co-occurrence vectors of the vocabulary's words (zero rows where ``present`` is False)."""

    vectors: torch.Tensor  # (words, c) float64
    present: torch.Tensor  # (words,) bool
    backend: dict[str, Any]

    def manifest(self) -> dict[str, Any]:
        """What a run manifest records: the backend and the coverage of the vocabulary."""
        missing = int((~self.present).sum())
        return {**self.backend, "n_with_vector": int(self.present.sum()), "n_without_vector": missing}


# ---------------------------------------------------------------- text vector files (GloVe / word2vec)


def read_text_vectors(path: str | Path, wanted: set[str] | None = None) -> dict[str, np.ndarray]:
    """Vectors of a GloVe/word2vec text file (``word v1 v2 ...``; an ``N D`` header line is skipped).

    Only words in ``wanted`` are kept (all when None), so a large file costs little memory.
    """
    path = Path(path)
    if not path.exists():
        raise CooccurrenceError(f"word vector file {path} does not exist")
    found: dict[str, np.ndarray] = {}
    dim: int | None = None
    with path.open(encoding="utf-8", errors="replace") as handle:
        for number, line in enumerate(handle, 1):
            parts = line.rstrip().split(" ")
            if number == 1 and len(parts) == 2 and all(p.isdigit() for p in parts):
                continue  # word2vec header
            if len(parts) < 2:
                continue
            if dim is None:
                dim = len(parts) - 1
            if len(parts) - 1 != dim:
                raise CooccurrenceError(f"{path}:{number}: {len(parts) - 1} values where earlier lines had {dim}")
            if wanted is not None and parts[0] not in wanted and parts[0].lower() not in wanted:
                continue
            try:
                found.setdefault(parts[0], np.array(parts[1:], dtype=np.float64))
            except ValueError as exc:
                raise CooccurrenceError(f"{path}:{number}: a value is not a number") from exc
    if dim is None:
        raise CooccurrenceError(f"word vector file {path} has no vectors")
    return found


def _lookup(table: dict[str, np.ndarray], words: list[str], dim: int) -> tuple[np.ndarray, np.ndarray]:
    """Each word's vector (exact spelling first, then lower-cased) and whether it has one."""
    matrix = np.zeros((len(words), dim))
    present = np.zeros(len(words), dtype=bool)
    for i, word in enumerate(words):
        vector = table.get(word)
        if vector is None:
            vector = table.get(word.lower())
        if vector is not None:
            matrix[i], present[i] = vector, True
    return matrix, present


# ---------------------------------------------------------------- PPMI + SVD over a corpus


def tokenize_corpus(lines: list[str]) -> list[list[str]]:
    """Lower-cased word tokens of each line (letters with an optional apostrophe part)."""
    return [_TOKEN.findall(line.lower()) for line in lines]


def cooccurrence_counts(
    documents: list[list[str]], window: int = 5, min_count: int = 1
) -> tuple[list[str], sp.csr_matrix]:
    """Symmetric counts of word pairs at most ``window`` tokens apart within a line.

    Words seen fewer than ``min_count`` times are removed before windows are formed.
    """
    counts: dict[str, int] = {}
    for doc in documents:
        for token in doc:
            counts[token] = counts.get(token, 0) + 1
    words = sorted((w for w, c in counts.items() if c >= min_count), key=lambda w: (-counts[w], w))
    index = {w: i for i, w in enumerate(words)}
    ids = [np.array([index[t] for t in doc if t in index], dtype=np.int64) for doc in documents]
    rows, cols = [], []
    for doc in ids:
        for offset in range(1, window + 1):
            if len(doc) > offset:
                rows.append(doc[:-offset])
                cols.append(doc[offset:])
    n = len(words)
    if not rows:
        return words, sp.csr_matrix((n, n))
    r, c = np.concatenate(rows), np.concatenate(cols)
    upper = sp.coo_matrix((np.ones(len(r)), (r, c)), shape=(n, n)).tocsr()
    return words, (upper + upper.T).tocsr()


def ppmi(counts: sp.csr_matrix) -> sp.csr_matrix:
    """Positive pointwise mutual information: max(0, log(n_wc · N / (n_w · n_c)))."""
    counts = sp.csr_matrix(counts, dtype=np.float64)
    total = counts.sum()
    row = np.asarray(counts.sum(axis=1)).ravel()
    col = np.asarray(counts.sum(axis=0)).ravel()
    coo = counts.tocoo()
    values = np.log(coo.data * total / (row[coo.row] * col[coo.col]))
    keep = values > 0
    return sp.csr_matrix((values[keep], (coo.row[keep], coo.col[keep])), shape=counts.shape)


def svd_vectors(matrix: sp.csr_matrix, dim: int) -> np.ndarray:
    """Rows of ``U_k · sqrt(S_k)`` of the truncated SVD (dense SVD when the matrix is small)."""
    if min(matrix.shape) <= dim + 1:
        u, s, _ = np.linalg.svd(matrix.toarray(), full_matrices=False)
    else:
        u, s, _ = svds(matrix, k=dim, random_state=0)
        order = np.argsort(-s)
        u, s = u[:, order], s[order]
    return u * np.sqrt(s)


def wordnet_corpus() -> Path:
    """The WordNet glosses (packaged, or ``$SHIFTLENS_WORDNET``) as a plain-text corpus, one gloss a line.

    Written once to the cache, under a name that depends on the WordNet source.
    """
    source = wordnet()
    key = hashlib.sha256(source.source.encode()).hexdigest()[:12]
    target = cache_root() / "corpora" / f"wordnet-glosses-{key}.txt"
    if not target.exists():
        atomic_write_text(target, "\n".join(source.glosses()) + "\n")
    return target


def ppmi_vectors(
    corpus: str | Path, *, window: int = 5, dim: int = 100, min_count: int = 2
) -> tuple[list[str], np.ndarray, dict[str, Any]]:
    """PPMI+SVD word vectors of a text corpus, cached by corpus content hash and parameters."""
    corpus = Path(corpus)
    if not corpus.is_file():
        raise CooccurrenceError(f"corpus {corpus} does not exist (ppmi:CORPUS takes a plain-text file)")
    data = corpus.read_bytes()
    params = {"window": window, "dim": dim, "min_count": min_count, "weighting": "ppmi", "svd": "U*sqrt(S)"}
    key = hashlib.sha256(data + json.dumps(params, sort_keys=True).encode()).hexdigest()[:20]
    info = {"corpus": str(corpus), "corpus_sha256": hashlib.sha256(data).hexdigest(), **params}
    cached = cache_root() / "ppmi" / f"{key}.npz"
    if cached.exists():
        with np.load(cached, allow_pickle=False) as stored:
            return [str(w) for w in stored["words"]], stored["vectors"].astype(np.float64), info
    text = data.decode("utf-8", errors="replace")
    words, counts = cooccurrence_counts(tokenize_corpus(text.splitlines()), window, min_count)
    if len(words) < 3:
        raise CooccurrenceError(f"corpus {corpus} has fewer than 3 words seen {min_count} times")
    vectors = svd_vectors(ppmi(counts), min(dim, len(words) - 2))
    buffer = io.BytesIO()
    np.savez(buffer, words=np.array(words), vectors=vectors.astype(np.float32))
    atomic_write_bytes(cached, buffer.getvalue())
    return words, vectors.astype(np.float32).astype(np.float64), info


# ---------------------------------------------------------------- backend dispatch


def _sentence_transformer(name: str, words: list[str]) -> np.ndarray:
    try:
        from sentence_transformers import SentenceTransformer
    except ImportError as exc:
        raise CooccurrenceError(
            "st: needs the sentence-transformers package: pip install sentence-transformers"
        ) from exc
    try:
        model = SentenceTransformer(name, device="cpu")
    except Exception as exc:  # noqa: BLE001 - any load failure is a user-facing error here
        raise CooccurrenceError(f"could not load sentence-transformers model {name!r}: {exc}") from exc
    return np.asarray(model.encode(words, convert_to_numpy=True), dtype=np.float64)


def word_vectors(spec: str, words: list[str]) -> WordVectors | None:
    """Unit co-occurrence vectors of ``words`` by a backend spec; None for ``none`` (no filter)."""
    kind, argument = parse_spec(spec)
    if kind == "none":
        return None
    backend: dict[str, Any] = {"backend": kind, "spec": spec}
    if kind == "glove":
        table = read_text_vectors(argument, set(words) | {w.lower() for w in words})
        dim = len(next(iter(table.values()))) if table else 1
        matrix, present = _lookup(table, words, dim)
    elif kind == "st":
        matrix = _sentence_transformer(argument, words)
        present = np.ones(len(words), dtype=bool)
    else:
        corpus = wordnet_corpus() if argument == "wordnet" else Path(argument)
        corpus_words, vectors, info = ppmi_vectors(corpus)
        backend.update(info)
        matrix, present = _lookup(dict(zip(corpus_words, vectors)), words, vectors.shape[1])
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    present &= norms[:, 0] > 0
    unit = np.divide(matrix, norms, out=np.zeros_like(matrix), where=norms > 0)
    return WordVectors(torch.from_numpy(unit), torch.from_numpy(present), backend)
