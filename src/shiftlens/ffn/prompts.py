"""Our annotation prompts (concept, user tasks, linguistic level), their few-shot examples and parsers.

Each prompt asks for one fixed-format line so that answers parse without guessing; an answer that
does not parse raises `UnparseableAnswer` and is recorded as such, never guessed at.
"""

from __future__ import annotations

import re

Messages = list[dict[str, str]]

TASKS: tuple[str, ...] = (
    "daily writing",
    "literary writing",
    "professional writing",
    "math",
    "coding",
    "translation",
)
LEVELS: tuple[str, ...] = ("phonology", "morphology", "syntax", "semantics")
CANNOT_TELL = "cannot tell"


class UnparseableAnswer(ValueError):
    """A reply that is not in the format its prompt asked for."""


CONCEPT_SYSTEM = (
    "You help interpret a language model. You are shown the words that one internal direction of the "
    "model pushes its predictions towards, strongest first. Decide whether the words share one concept. "
    "If at least half of them fit a single concept, name that concept in a few words. If fewer than half "
    "fit any single concept, say that you cannot tell. Answer with exactly one line, either "
    "'Concept: <short name>' or 'Concept: cannot tell'."
)
CONCEPT_EXAMPLES: tuple[tuple[str, str], ...] = (
    (
        "pear, plum, apricot, mango, cherry, lime, grapefruit, melon, kiwi, fig, peach, banana, apple, berry, grape",
        "Concept: fruits",
    ),
    (
        "walking, baking, knitting, painting, hiking, typing, sewing, fishing, camping, rowing, skating, "
        "singing, drawing, boxing, sailing",
        "Concept: verb forms ending in -ing",
    ),
    (
        "seldom, violet, Oslo, into, seventeen, kettle, whom, thunder, brightly, lawn, gray, rather, x, mostly, pencil",
        "Concept: cannot tell",
    ),
    (
        "elif, lambda, def, yield, import, None, self, await, async, return, True, pass, except, finally, raise",
        "Concept: Python keywords",
    ),
)

TASKS_SYSTEM = (
    "You help interpret a language model. You are shown a concept that the model stores together with "
    "its example words. Say which kinds of user request the concept helps the model serve. The kinds "
    "are: daily writing (messages, emails, everyday descriptions), literary writing (stories, poems, "
    "figurative or emotional language), professional writing (business, legal, scientific or technical "
    "documents), math (numbers, arithmetic, equations), coding (programming languages and tools), "
    "translation (words of languages other than English, or for moving between languages), none. "
    "Several kinds may apply. Answer with exactly one line: 'Tasks: <kind>, <kind>' or 'Tasks: none'."
)
TASKS_EXAMPLES: tuple[tuple[str, str], ...] = (
    (
        "Concept: fruits\nWords: pear, plum, apricot, mango, cherry, lime, grapefruit, melon, kiwi, fig",
        "Tasks: daily writing, literary writing",
    ),
    (
        "Concept: Python keywords\nWords: elif, lambda, def, yield, import, None, self, await, async, return",
        "Tasks: coding",
    ),
    (
        "Concept: German function words\nWords: und, der, die, nicht, mit, auch, sich, wird, eine, oder",
        "Tasks: translation",
    ),
    (
        "Concept: contract terms\nWords: clause, hereby, liability, party, breach, indemnify, terminate, warranty",
        "Tasks: professional writing",
    ),
    (
        "Concept: word fragments ending in -ck\nWords: ck, ack, eck, ick, ock, uck, rick, stack, flick, dock",
        "Tasks: none",
    ),
)

LEVEL_SYSTEM = (
    "You help interpret a language model. You are shown a concept that the model stores together with "
    "its example words. Say which linguistic level the concept belongs to: phonology (sounds or spelling "
    "patterns such as rhymes or shared letters), morphology (word forms: prefixes, suffixes, "
    "inflections), syntax (grammatical roles such as articles, prepositions, conjunctions, auxiliaries), "
    "semantics (meaning: topics and categories of things, actions or qualities). Answer with exactly "
    "one line: 'Level: <level>'."
)
LEVEL_EXAMPLES: tuple[tuple[str, str], ...] = (
    (
        "Concept: fruits\nWords: pear, plum, apricot, mango, cherry, lime, grapefruit, melon, kiwi, fig",
        "Level: semantics",
    ),
    (
        "Concept: verb forms ending in -ing\nWords: walking, baking, knitting, painting, hiking, typing, sewing",
        "Level: morphology",
    ),
    (
        "Concept: articles and prepositions\nWords: the, a, of, in, on, an, to, at, by, from, with",
        "Level: syntax",
    ),
    (
        "Concept: words rhyming with -ight\nWords: night, kite, bright, height, white, sight, bite, flight",
        "Level: phonology",
    ),
)


def _messages(system: str, examples: tuple[tuple[str, str], ...], query: str) -> Messages:
    messages = [{"role": "system", "content": system}]
    for question, answer in examples:
        messages += [{"role": "user", "content": question}, {"role": "assistant", "content": answer}]
    return messages + [{"role": "user", "content": query}]


def concept_messages(words: list[str]) -> Messages:
    """Prompt (a): name the concept shared by a word list, or 'cannot tell'."""
    return _messages(CONCEPT_SYSTEM, CONCEPT_EXAMPLES, ", ".join(words))


def _described(concept: str, words: list[str]) -> str:
    return f"Concept: {concept}\nWords: {', '.join(words)}"


def tasks_messages(concept: str, words: list[str]) -> Messages:
    """Prompt (b): which user tasks a named concept serves."""
    return _messages(TASKS_SYSTEM, TASKS_EXAMPLES, _described(concept, words))


def level_messages(concept: str, words: list[str]) -> Messages:
    """Prompt (c): the linguistic level of a named concept."""
    return _messages(LEVEL_SYSTEM, LEVEL_EXAMPLES, _described(concept, words))


def _field(answer: str, name: str) -> str:
    """The value after ``name:`` on the answer's first line that has one (markdown emphasis ignored)."""
    for line in answer.replace("*", "").splitlines():
        match = re.match(rf"\s*{name}\s*:\s*(.*?)\s*$", line, flags=re.IGNORECASE)
        if match and match.group(1):
            return match.group(1).strip(" .'\"`")
    raise UnparseableAnswer(f"no '{name}:' line in the answer")


def parse_concept(answer: str) -> str | None:
    """The concept name, or None for 'cannot tell'."""
    value = _field(answer, "concept")
    normalised = value.lower().replace("can't", "cannot").replace("can not", "cannot")
    if not value:
        raise UnparseableAnswer("empty concept")
    return None if normalised.startswith(CANNOT_TELL) else value


def parse_tasks(answer: str) -> list[str]:
    """The task categories named (empty for 'none'), in the canonical order."""
    value = _field(answer, "tasks").lower()
    items = {item.strip(" .'\"`") for item in re.split(r",|;|\band\b|/", value)} - {""}
    if items == {"none"}:
        return []
    unknown = items - set(TASKS)
    if unknown or not items:
        raise UnparseableAnswer(f"unknown task categories {sorted(unknown)}")
    return [task for task in TASKS if task in items]


def parse_level(answer: str) -> str:
    """The linguistic level named."""
    value = _field(answer, "level").lower()
    if value not in LEVELS:
        raise UnparseableAnswer(f"unknown level {value!r}")
    return value
