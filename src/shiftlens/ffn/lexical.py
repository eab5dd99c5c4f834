"""The offline lexical annotator: deterministic concept labels from WordNet and word lists, no LLM needed.

A HEURISTIC stand-in for the LLM annotation, for machines without an endpoint; every output it
produces says so. Each word gets tags: the lexicographer file of its first WordNet sense (the packaged
WordNet 3.0, or ``$SHIFTLENS_WORDNET``), or "number", "code token", "function word",
"non-English", "punctuation", a shared suffix/prefix, a rhyme. The tag carried by most words is the
concept when at least half of the words carry it; the tag's kind gives the linguistic level and the
member words' tags vote for the task categories.
"""

from __future__ import annotations

import re
from collections import Counter

from shiftlens.ffn.labels import OK, Label
from shiftlens.ffn.prompts import TASKS
from shiftlens.wordnet import FILE_POS, WordNet, wordnet

POS_FILES = {letter: name for name, letter in FILE_POS.items()}

# WordNet's lexicographer file names, by lex_filenum (WordNet 3.0 documentation, lexnames(5WN)).
LEXNAMES = (
    "adj.all adj.pert adv.all noun.Tops noun.act noun.animal noun.artifact noun.attribute noun.body "
    "noun.cognition noun.communication noun.event noun.feeling noun.food noun.group noun.location "
    "noun.motive noun.object noun.person noun.phenomenon noun.plant noun.possession noun.process "
    "noun.quantity noun.relation noun.shape noun.state noun.substance noun.time verb.body verb.change "
    "verb.cognition verb.communication verb.competition verb.consumption verb.contact verb.creation "
    "verb.emotion verb.motion verb.perception verb.possession verb.social verb.stative verb.weather adj.ppl"
).split()

# Morphological detachment rules per part of speech (suffix, replacement), as WordNet's morphy applies.
DETACH = {
    "n": (
        ("s", ""),
        ("ses", "s"),
        ("xes", "x"),
        ("zes", "z"),
        ("ches", "ch"),
        ("shes", "sh"),
        ("men", "man"),
        ("ies", "y"),
    ),
    "v": (
        ("s", ""),
        ("ies", "y"),
        ("es", "e"),
        ("es", ""),
        ("ed", "e"),
        ("ed", ""),
        ("ing", "e"),
        ("ing", ""),
    ),
    "a": (("er", ""), ("est", ""), ("er", "e"), ("est", "e")),
    "r": (),
}

FUNCTION_WORDS = frozenset(
    "a an the this that these those of in on at by for with from to into onto over under about as than "
    "and or but nor so yet if because while although though whether since until unless i you he she it "
    "we they me him her us them my your his its our their mine yours hers ours theirs who whom whose "
    "which what is am are was were be been being do does did have has had will would shall should can "
    "could may might must not no there here some any each every all both either neither".split()
)
CODE_WORDS = frozenset(
    "def return import elif lambda yield async await self none true false null nil var let const function "
    "class struct enum int float bool char void string str dict list tuple public private static final "
    "println printf print len range try except catch throw throws finally extends implements interface "
    "namespace include typedef sizeof malloc free boolean args kwargs init main np df plt json http api "
    "html css div href src url sql select where from println console log".split()
)
MATH_WORDS = frozenset(
    "sum product equation integer fraction derivative integral matrix vector theorem proof lemma angle "
    "triangle circle square root prime divisor multiply divide plus minus equals percent ratio formula "
    "variable function algebra geometry calculus probability median mean average".split()
)
NUMBER_WORDS = frozenset(
    "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen "
    "sixteen seventeen eighteen nineteen twenty thirty forty fifty sixty seventy eighty ninety hundred "
    "thousand million billion first second third fourth fifth half quarter dozen".split()
)
SUFFIXES = (
    "ing",
    "ed",
    "ly",
    "tion",
    "sion",
    "ness",
    "ment",
    "able",
    "ible",
    "ful",
    "less",
    "ous",
    "ive",
    "ity",
    "ism",
    "ist",
    "ize",
    "est",
    "er",
    "s",
)
PREFIXES = ("un", "re", "dis", "pre", "non", "mis", "over", "under", "inter", "anti", "sub", "super")

LITERARY = {
    "noun.feeling",
    "verb.emotion",
    "noun.animal",
    "noun.plant",
    "noun.body",
    "verb.perception",
    "verb.weather",
    "noun.phenomenon",
    "noun.object",
    "adj.all",
}
PROFESSIONAL = {
    "noun.act",
    "noun.group",
    "noun.possession",
    "noun.communication",
    "noun.cognition",
    "noun.relation",
    "noun.process",
    "noun.attribute",
    "verb.social",
    "verb.possession",
    "verb.communication",
    "verb.competition",
    "noun.state",
    "noun.Tops",
    "adj.pert",
}
DAILY = {
    "noun.food",
    "noun.artifact",
    "noun.time",
    "noun.person",
    "noun.location",
    "noun.substance",
    "noun.event",
    "verb.consumption",
    "verb.motion",
    "verb.contact",
    "verb.body",
    "verb.change",
    "verb.creation",
    "verb.stative",
    "verb.cognition",
    "adv.all",
    "adj.ppl",
    "noun.shape",
    "noun.motive",
}

# Tag kinds in tie-break order, with the linguistic level each implies.
KIND_LEVEL = {
    "code": "semantics",
    "number": "semantics",
    "function": "syntax",
    "foreign": "semantics",
    "punct": "syntax",
    "lex": "semantics",
    "affix": "morphology",
    "sound": "phonology",
}


class LexNames:
    """A word's first-sense lexicographer file (``noun.animal``, ``verb.motion``, ...), looked up in WordNet."""

    def __init__(self, source: WordNet | None = None) -> None:
        self.wordnet = source or wordnet()
        self.source = self.wordnet.source
        self._lexnames: dict[str, str | None] = {}

    def _base(self, word: str, pos: str) -> str | None:
        """The word's base form under a part of speech: itself, its exception-list base, or a detached form."""
        entries = self.wordnet.index_table[POS_FILES[pos]]
        if word in entries:
            return word
        irregular = self.wordnet.exception_table[POS_FILES[pos]].get(word)
        if irregular in entries:
            return irregular
        for suffix, replacement in DETACH[pos]:
            if word.endswith(suffix) and len(word) > len(suffix):
                candidate = word[: -len(suffix)] + replacement
                if candidate in entries:
                    return candidate
        return None

    def lexname(self, word: str) -> str | None:
        """The lexicographer file of the first sense of the word's most-tagged part of speech, if any."""
        word = word.lower().replace(" ", "_")
        if word not in self._lexnames:
            self._lexnames[word] = self._lookup(word)
        return self._lexnames[word]

    def _lookup(self, word: str) -> str | None:
        best: tuple[int, str, str] | None = None
        for pos in POS_FILES:  # ties keep the earlier part of speech: noun, verb, adj, adv
            base = self._base(word, pos)
            if base is not None:
                entry = self.wordnet.index_table[POS_FILES[pos]][base]
                if best is None or entry.tagged > best[0]:
                    best = (entry.tagged, entry.offsets[0], pos)
        if best is None:
            return None
        return LEXNAMES[self.wordnet.synset_table[(best[2], best[1])].lex_filenum]


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
