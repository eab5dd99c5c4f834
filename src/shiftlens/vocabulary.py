"""Word lists and word vectors: the vocabulary that the heads and FFN methods explain with.

A word's vector is the mean of its subtoken rows in an embedding matrix (input embeddings for heads,
unembeddings for FFN), the word tokenised with a leading space and a lone space token dropped, as in
the paper. Words that tokenise to nothing are reported, never silently kept.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from shiftlens.errors import ShiftlensError


class VocabularyError(ShiftlensError, ValueError):
    """A word list that cannot be read or leaves no usable word."""


@dataclass
class Vocabulary:
    """Words in frequency order with their subtoken ids; ``skipped`` lists words with no usable token."""

    words: list[str]
    frequencies: list[float | None]
    token_ids: list[list[int]]
    skipped: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.words)

    def vectors(self, matrix: torch.Tensor) -> torch.Tensor:
        """Each word's mean subtoken row of ``matrix`` (tokens × hidden) → (words × hidden), float32."""
        flat = torch.tensor([t for ids in self.token_ids for t in ids], dtype=torch.long, device=matrix.device)
        lengths = torch.tensor([len(ids) for ids in self.token_ids], device=matrix.device)
        offsets = torch.cumsum(lengths, 0) - lengths
        return torch.nn.functional.embedding_bag(flat, matrix.float(), offsets, mode="mean")

    def manifest(self) -> dict[str, Any]:
        """What a run manifest records about the vocabulary."""
        return {"n_words": len(self.words), "n_skipped": len(self.skipped), "skipped": self.skipped[:50]}


def read_word_list(
    path: str | Path,
    *,
    min_frequency: float | None = None,
    alphabetic: bool = False,
    top_n: int | None = None,
) -> list[tuple[str, float | None]]:
    """Read ``word<TAB>frequency`` lines or one word per line, most frequent first, filters applied.

    Duplicates keep their first occurrence; with frequencies present the list is sorted by them.
    """
    path = Path(path)
    try:
        raw = path.read_bytes()
    except FileNotFoundError as exc:
        raise VocabularyError(f"word list {path} does not exist") from exc
    try:
        lines = raw.decode("utf-8").splitlines()
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        raise VocabularyError(f"{path}:{line}: word list is not valid UTF-8 (byte {exc.start})") from exc
    entries: dict[str, float | None] = {}
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        parts = line.rstrip("\n").split("\t")
        word = parts[0].strip()
        frequency: float | None = None
        if len(parts) > 1 and parts[1].strip():
            try:
                frequency = float(parts[1])
            except ValueError as exc:
                raise VocabularyError(f"{path}:{number}: frequency {parts[1]!r} is not a number") from exc
        if word and word not in entries:
            entries[word] = frequency
    items = list(entries.items())
    if all(f is not None for _, f in items):
        items.sort(key=lambda item: -item[1])  # type: ignore[operator]
    if min_frequency is not None:
        items = [(w, f) for w, f in items if f is not None and f >= min_frequency]
    if alphabetic:
        items = [(w, f) for w, f in items if w.isalpha()]
    if top_n is not None:
        items = items[:top_n]
    if not items:
        raise VocabularyError(f"no words left in {path} after filtering")
    return items


def tokenize_words(tokenizer: Any, entries: list[tuple[str, float | None]]) -> Vocabulary:
    """Subtoken ids of each word with a leading space, lone space tokens dropped; empty words skipped."""
    words = [w for w, _ in entries]
    encoded = tokenizer([" " + w for w in words], add_special_tokens=False)["input_ids"]
    unique = {t for ids in encoded for t in ids}
    blank = {t for t in unique if not tokenizer.decode([t]).strip()}
    kept_words, kept_freqs, kept_ids, skipped = [], [], [], []
    for (word, frequency), ids in zip(entries, encoded):
        ids = [t for t in ids if t not in blank]
        if ids:
            kept_words.append(word)
            kept_freqs.append(frequency)
            kept_ids.append(ids)
        else:
            skipped.append(word)
    if not kept_words:
        raise VocabularyError("no word of the list tokenises to a usable token")
    return Vocabulary(kept_words, kept_freqs, kept_ids, skipped)


def load_vocabulary(path: str | Path, tokenizer: Any, **filters: Any) -> Vocabulary:
    """Read a word list (see `read_word_list` for filters) and tokenise it for a model."""
    return tokenize_words(tokenizer, read_word_list(path, **filters))
