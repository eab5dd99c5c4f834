"""The lexical annotator's lexicon: WordNet lexicographer files of words (`LexNames`) and its word lists.

Word lists and tables: function, code, maths and number words, affixes, the lexicographer files each task
category counts, and the linguistic level of each tag kind (`shiftlens.ffn.lexical` reads them).
"""

from __future__ import annotations

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
