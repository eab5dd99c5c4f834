"""The offline lexical annotator: deterministic concept labels from WordNet and word lists, no LLM needed.

A HEURISTIC stand-in for the LLM annotation, for machines without an endpoint; every output it
produces says so. Each word gets tags: the lexicographer file of its first WordNet sense (the packaged
WordNet 3.0, or ``$SHIFTLENS_WORDNET``), or "number", "code token", "function word",
"non-English", "punctuation", a shared suffix/prefix, a rhyme. The tag carried by most words is the
concept when at least half of the words carry it; the tag's kind gives the linguistic level and the
member words' tags vote for the task categories. The word lists and the WordNet lookup: `shiftlens.ffn.lexicon`.
"""

from __future__ import annotations

import re
from collections import Counter

from shiftlens.ffn.labels import OK, Label
from shiftlens.ffn.lexicon import (
    CODE_WORDS,
    DAILY,
    FUNCTION_WORDS,
    KIND_LEVEL,
    LITERARY,
    MATH_WORDS,
    NUMBER_WORDS,
    PREFIXES,
    PROFESSIONAL,
    SUFFIXES,
    LexNames,
)
from shiftlens.ffn.prompts import TASKS


def word_tags(word: str, lexnames: LexNames) -> list[tuple[str, str]]:
    """The (kind, tag) pairs of one word."""
    lower = word.lower()
    if not any(ch.isalnum() for ch in word):
        return [("punct", "punctuation")]
    if re.fullmatch(r"[\d.,/%+\-^]+", word) or lower in NUMBER_WORDS:
        return [("number", "numbers")]
    tags: list[tuple[str, str]] = []
    if lower in CODE_WORDS or re.search(r"[_(){};=<>\[\]]|[a-z][A-Z]|\w\.\w", word):
        tags.append(("code", "code tokens"))
    if lower in FUNCTION_WORDS:
        tags.append(("function", "function words"))
    if any(ch.isalpha() and not ch.isascii() for ch in word):
        tags.append(("foreign", "non-English words"))
    lexname = None if tags else lexnames.lexname(word)
    if lexname is not None:
        tags.append(("lex", lexname))
    if word.isalpha():
        suffix = next((s for s in SUFFIXES if lower.endswith(s) and len(lower) > len(s) + 2), None)
        prefix = next((p for p in PREFIXES if lower.startswith(p) and len(lower) > len(p) + 2), None)
        if suffix:
            tags.append(("affix", f"words ending in -{suffix}"))
        elif len(lower) >= 4:
            tags.append(("sound", f"words rhyming in -{lower[-3:]}"))
        if prefix:
            tags.append(("affix", f"words starting with {prefix}-"))
    return tags


def concept_name(tag: str) -> str:
    """A readable concept name for a tag (lexicographer files read as 'food (nouns)')."""
    names = {
        "adj.all": "adjectives",
        "adj.pert": "relational adjectives",
        "adj.ppl": "participial adjectives",
        "adv.all": "adverbs",
        "noun.Tops": "general nouns",
    }
    if tag in names:
        return names[tag]
    if "." in tag and tag.split(".")[0] in ("noun", "verb"):
        pos, topic = tag.split(".")
        return f"{topic} ({pos}s)"
    return tag


def task_votes(word: str, tags: list[tuple[str, str]]) -> set[str]:
    """The task categories one word speaks for."""
    kinds = {kind for kind, _ in tags}
    lexnames = {tag for kind, tag in tags if kind == "lex"}
    votes = set()
    if "code" in kinds:
        votes.add("coding")
    if "number" in kinds or word.lower() in MATH_WORDS or "noun.quantity" in lexnames:
        votes.add("math")
    if "foreign" in kinds:
        votes.add("translation")
    for category, names in (
        ("literary writing", LITERARY),
        ("professional writing", PROFESSIONAL),
        ("daily writing", DAILY),
    ):
        if lexnames & names:
            votes.add(category)
    return votes


class LexicalAnnotator:
    """Deterministic heuristic labels (see the module docstring); ``run`` is ignored."""

    heuristic = True

    def __init__(self, lexnames: LexNames | None = None) -> None:
        self.lexnames = lexnames or LexNames()

    def describe(self) -> dict:
        """What the manifest records about this annotator."""
        return {
            "annotator": "lexical",
            "source": self.lexnames.source,
            "heuristic": True,
            "note": "HEURISTIC: WordNet lexicographer files and word lists, not a language model",
        }

    def label(self, words: list[str], run: int = 0) -> Label:
        """Label one word list."""
        tagged = [(word, word_tags(word, self.lexnames)) for word in words]
        counts = Counter((kind, tag) for _, tags in tagged for kind, tag in set(tags))
        label = Label()
        label.status["concept"] = OK
        if not counts:
            return label
        order = list(KIND_LEVEL)
        (kind, tag), count = min(counts.items(), key=lambda item: (-item[1], order.index(item[0][0]), item[0][1]))
        if 2 * count < len(words):
            return label
        label.concept, label.level = concept_name(tag), KIND_LEVEL[kind]
        members = [(word, tags) for word, tags in tagged if (kind, tag) in tags]
        votes = Counter(vote for word, tags in members for vote in task_votes(word, tags))
        label.tasks = [task for task in TASKS if 2 * votes[task] >= len(members)]
        label.status.update(tasks=OK, level=OK)
        return label
