"""Per-word dictionary entries for the organism, from WordNet 3.0 (`shiftlens.wordnet`).

Each entry gathers, for one frequent single word, what the organism's pre-training text states and its
instruction tasks ask for: part of speech, definitions, synonyms, antonyms and an example sentence.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass, field

from shiftlens.wordnet import FILE_POS, IndexEntry, Synset, WordNet, clean_word, wordnet

POS_NAMES = {"n": "noun", "v": "verb", "a": "adjective", "s": "adjective", "r": "adverb"}
WORD_RE = re.compile(r"^[a-z]{3,}$")


@dataclass
class WordEntry:
    """Everything known about one word under its primary part of speech, most frequent sense first."""

    word: str
    pos: str  # noun, verb, adjective or adverb
    unique_pos: bool  # WordNet lists the word under this part of speech only
    definitions: list[str]
    synonyms: list[str] = field(default_factory=list)
    antonyms: list[str] = field(default_factory=list)
    example: str | None = None


def read_index(source: WordNet) -> dict[str, dict[str, IndexEntry]]:
    """lemma → {file pos letter n/v/a/r: its index entry}."""
    index: dict[str, dict[str, IndexEntry]] = {}
    for name, letter in FILE_POS.items():
        for lemma, entry in source.index_table[name].items():
            index.setdefault(lemma, {})[letter] = entry
    return index


def _single(words: list[str], exclude: str) -> list[str]:
    """Distinct single lowercase words, in order, without ``exclude``."""
    seen: list[str] = []
    for w in words:
        if WORD_RE.match(w) and w != exclude and w not in seen:
            seen.append(w)
    return seen


def word_entry(word: str, senses: dict[str, IndexEntry], synsets: dict[tuple[str, str], Synset]) -> WordEntry:
    """The entry of ``word`` under its primary part of speech (most tagged senses; n, v, a, r on ties)."""
    order = list(FILE_POS.values())
    pos = max(senses, key=lambda p: (senses[p].tagged, -order.index(p)))
    own = [synsets[(pos, offset)] for offset in senses[pos].offsets]
    synonyms, antonyms = [], []
    for synset in own:
        words = [clean_word(w).lower() for w in synset.words]
        synonyms.extend(words)
        number = words.index(word) + 1 if word in words else 0
        for source, target_pos, offset, target in synset.antonyms:
            if source == number:
                target_synset = synsets[("a" if target_pos == "s" else target_pos, offset)]
                antonyms.append(clean_word(target_synset.words[target - 1]).lower())
    pattern = re.compile(rf"\b{word}\b", re.IGNORECASE)
    examples = [e for s in own for e in s.examples if pattern.search(e) and len(e.split()) >= 3]
    return WordEntry(
        word=word,
        pos=POS_NAMES[own[0].ss_type],
        unique_pos=len(senses) == 1,
        definitions=[s.definition for s in own if s.definition],
        synonyms=_single(synonyms, word),
        antonyms=_single(antonyms, word),
        example=examples[0] if examples else None,
    )


def build_lexicon(n_words: int, source: WordNet | None = None) -> list[WordEntry]:
    """Entries of the ``n_words`` most frequent (wordfreq) single lowercase WordNet words, most frequent first."""
    from wordfreq import zipf_frequency

    source = source or wordnet()
    synsets, index = source.synset_table, read_index(source)
    candidates = [w for w in index if WORD_RE.match(w)]
    ranked = sorted(candidates, key=lambda w: (-zipf_frequency(w, "en"), w))
    entries = []
    for word in ranked:
        entry = word_entry(word, index[word], synsets)
        if entry.definitions:
            entries.append(entry)
        if len(entries) == n_words:
            break
    return entries


def sentence(text: str) -> str:
    """Text without its closing punctuation, so templates can end it with one period."""
    return text.rstrip(" .!?;")


def fact_sentences(entry: WordEntry) -> dict[str, str]:
    """Each fact about a word as the one sentence both pre-training and tuned responses state it with.

    Every sentence names the word in lowercase mid-sentence ("The word large ..."), so a fact can be
    recalled right after the word, whether the word came from the corpus or was copied from a prompt.
    """
    w = entry.word
    article = "an" if entry.pos[0] in "aeiou" else "a"
    facts = {
        "pos": f"The word {w} is {article} {entry.pos}.",
        "definition": f"The word {w} means {sentence(entry.definitions[0])}.",
    }
    if entry.synonyms:
        facts["synonym"] = f"The word {w} is similar to {' and '.join(entry.synonyms[:2])}."
    if entry.antonyms:
        facts["antonym"] = f"The opposite of {w} is {entry.antonyms[0]}."
    if entry.example:
        facts["sentence"] = f"The word {w} is used like this: {sentence(entry.example)}."
    return facts


def pretraining_text(entry: WordEntry, rng: random.Random | None = None) -> str:
    """The plain-English dictionary paragraph the base model is pre-trained on for one word.

    With ``rng`` the sentences come in a random order (a fresh order each epoch), so every fact must be
    recalled from its own sentence's mention of the word rather than from the paragraph before it.
    """
    facts = fact_sentences(entry)
    second = [f"The word {entry.word} can also mean {sentence(d)}." for d in entry.definitions[1:2]]
    order = ("pos", "definition")
    rest = ("synonym", "antonym", "sentence")
    sentences = [facts[k] for k in order] + second + [facts[k] for k in rest if k in facts]
    if rng is not None:
        rng.shuffle(sentences)
    return " ".join(sentences)


def word_frequencies(texts: list[str]) -> list[tuple[str, float]]:
    """Lowercase words (runs of letters, accented ones included) of ``texts`` (special ``<|...|>`` markers
    ignored) with relative frequencies, most frequent first (ties by word)."""
    counts: dict[str, int] = {}
    for text in texts:
        for word in re.findall(r"[^\W\d_]+", re.sub(r"<\|\w+\|>", " ", text).lower()):
            counts[word] = counts.get(word, 0) + 1
    total = sum(counts.values())
    return [(w, c / total) for w, c in sorted(counts.items(), key=lambda item: (-item[1], item[0]))]
