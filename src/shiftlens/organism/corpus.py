"""WordNet 3.0 read from its data/index files (format: `man 5 wndb`) into per-word dictionary entries.

Each entry gathers, for one frequent single word, what the organism's pre-training text states and its
instruction tasks ask for: part of speech, definitions, synonyms, antonyms and an example sentence.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass, field
from pathlib import Path

from shiftlens.errors import ShiftlensError

WORDNET_DIR = Path("/usr/share/wordnet")
POS_FILES = {"n": "noun", "v": "verb", "a": "adj", "r": "adv"}
POS_NAMES = {"n": "noun", "v": "verb", "a": "adjective", "s": "adjective", "r": "adverb"}
WORD_RE = re.compile(r"^[a-z]{3,}$")


class WordNetError(ShiftlensError, ValueError):
    """The WordNet files are missing or a line does not follow the wndb format."""


@dataclass(frozen=True)
class Synset:
    """One data-file line: its words (in order), gloss definition, example sentences and antonym links."""

    pos: str
    words: tuple[str, ...]
    definition: str
    examples: tuple[str, ...]
    antonyms: tuple[tuple[int, str, str, int], ...]  # (source word number, pos, offset, target word number)


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


def _clean_word(raw: str) -> str:
    """A data-file word without its adjective marker, underscores as spaces."""
    return re.sub(r"\((a|p|ip)\)$", "", raw).replace("_", " ")


def parse_data_line(line: str, path: Path, lineno: int) -> tuple[str, Synset]:
    """(offset, synset) of one data-file line; a malformed line raises a WordNetError naming it."""
    try:
        head, _, gloss = line.partition(" | ")
        fields = head.split()
        offset, pos, w_cnt = fields[0], fields[2], int(fields[3], 16)
        words = tuple(_clean_word(fields[4 + 2 * i]) for i in range(w_cnt))
        at = 4 + 2 * w_cnt
        antonyms = []
        for i in range(int(fields[at])):
            symbol, target, target_pos, source_target = fields[at + 1 + 4 * i : at + 5 + 4 * i]
            if symbol == "!":
                antonyms.append((int(source_target[:2], 16), target_pos, target, int(source_target[2:], 16)))
    except (IndexError, ValueError) as exc:
        raise WordNetError(f"{path}:{lineno}: not a wndb data line ({exc})") from exc
    examples = tuple(e.strip() for e in re.findall(r'"([^"]+)"', gloss))
    definition = gloss.split('"')[0].strip().rstrip(";").strip()
    return offset, Synset(pos, words, definition, examples, tuple(antonyms))


def read_synsets(wordnet_dir: Path = WORDNET_DIR) -> dict[tuple[str, str], Synset]:
    """Every synset keyed by (file part of speech n/v/a/r, offset); satellites live under "a"."""
    synsets: dict[tuple[str, str], Synset] = {}
    for pos, name in POS_FILES.items():
        path = wordnet_dir / f"data.{name}"
        if not path.exists():
            raise WordNetError(f"{path} not found: install WordNet 3.0 (Debian package wordnet-base)")
        with path.open(encoding="utf-8") as handle:
            for lineno, line in enumerate(handle, 1):
                if not line.startswith("  "):
                    offset, synset = parse_data_line(line.rstrip("\n"), path, lineno)
                    synsets[(pos, offset)] = synset
    return synsets


def read_index(wordnet_dir: Path = WORDNET_DIR) -> dict[str, dict[str, tuple[int, list[str]]]]:
    """lemma -> {file pos: (tagged sense count, synset offsets in sense-frequency order)}."""
    index: dict[str, dict[str, tuple[int, list[str]]]] = {}
    for pos, name in POS_FILES.items():
        path = wordnet_dir / f"index.{name}"
        with path.open(encoding="utf-8") as handle:
            for lineno, line in enumerate(handle, 1):
                if line.startswith("  "):
                    continue
                fields = line.split()
                try:
                    synset_cnt, p_cnt = int(fields[2]), int(fields[3])
                    tagged = int(fields[5 + p_cnt])
                    offsets = fields[6 + p_cnt : 6 + p_cnt + synset_cnt]
                except (IndexError, ValueError) as exc:
                    raise WordNetError(f"{path}:{lineno}: not a wndb index line ({exc})") from exc
                index.setdefault(fields[0], {})[pos] = (tagged, offsets)
    return index


def _single(words: list[str], exclude: str) -> list[str]:
    """Distinct single lowercase words, in order, without ``exclude``."""
    seen: list[str] = []
    for w in words:
        if WORD_RE.match(w) and w != exclude and w not in seen:
            seen.append(w)
    return seen


def word_entry(word: str, senses: dict[str, tuple[int, list[str]]], synsets: dict) -> WordEntry:
    """The entry of ``word`` under its primary part of speech (most tagged senses; n, v, a, r on ties)."""
    order = list(POS_FILES)
    pos = max(senses, key=lambda p: (senses[p][0], -order.index(p)))
    own = [synsets[(pos, offset)] for offset in senses[pos][1]]
    synonyms, antonyms = [], []
    for synset in own:
        synonyms.extend(w.lower() for w in synset.words)
        number = [w.lower() for w in synset.words].index(word) + 1 if word in map(str.lower, synset.words) else 0
        for source, target_pos, offset, target in synset.antonyms:
            if source == number:
                target_synset = synsets[("a" if target_pos == "s" else target_pos, offset)]
                antonyms.append(target_synset.words[target - 1].lower())
    pattern = re.compile(rf"\b{word}\b", re.IGNORECASE)
    examples = [e for s in own for e in s.examples if pattern.search(e) and len(e.split()) >= 3]
    return WordEntry(
        word=word,
        pos=POS_NAMES[own[0].pos],
        unique_pos=len(senses) == 1,
        definitions=[s.definition for s in own if s.definition],
        synonyms=_single(synonyms, word),
        antonyms=_single(antonyms, word),
        example=examples[0] if examples else None,
    )


def build_lexicon(n_words: int, wordnet_dir: Path = WORDNET_DIR) -> list[WordEntry]:
    """Entries of the ``n_words`` most frequent (wordfreq) single lowercase WordNet words, most frequent first."""
    from wordfreq import zipf_frequency

    synsets, index = read_synsets(wordnet_dir), read_index(wordnet_dir)
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
    """Lowercase alphabetic words of ``texts`` (special ``<|...|>`` markers ignored) with relative
    frequencies, most frequent first (ties by word)."""
    counts: dict[str, int] = {}
    for text in texts:
        for word in re.findall(r"[a-z]+", re.sub(r"<\|\w+\|>", " ", text).lower()):
            counts[word] = counts.get(word, 0) + 1
    total = sum(counts.values())
    return [(w, c / total) for w, c in sorted(counts.items(), key=lambda item: (-item[1], item[0]))]
