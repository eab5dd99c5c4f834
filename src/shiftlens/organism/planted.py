"""The organism v2's planted tasks: which verb picks which word (heads), an invented lexicon (FFN), and
prompts with the instruction first or last in exactly equal shares (attribution).

* ``choose``: the context names one word of each of five categories in random order; the instruction's
  verb picks the category ("Eat one of these." → "I eat bread."). The category word is predicted at the
  response's verb, so the verb → word relation must be routed by attention from that token.
* ``translate``: the context states two dictionary facts of an English word; the reply gives the word's
  Zorbish translation, an invented word that appears in no pre-training text ("In Zorbish it is vék.").

Every held-out prompt yields a *followed* record (the reference response, rating 2) and an *unfollowed* one
(the response repeats a context sentence and ignores the instruction, rating 0), with the instruction
span, a control span (context tokens as many as the instruction's) and the instruction's position.
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TypeVar

from shiftlens.organism.corpus import WordEntry

# verb -> words it picks; every pair is one the default heads pair filter (PPMI over WordNet glosses) admits,
# so a recovered relation is not lost to the filter (checked by tests/test_organism_v2.py).
CATEGORIES: dict[str, tuple[str, ...]] = {
    "wear": ("shirt", "coat", "hat", "dress", "jacket", "boot", "glove", "sock", "skirt", "scarf"),
    "read": ("book", "letter", "poem", "newspaper", "magazine", "story", "report", "article", "page"),
    "play": ("piano", "guitar", "violin", "flute", "chess", "game", "ball", "card"),
    "drive": ("car", "truck", "bus", "tractor", "taxi", "vehicle", "wagon"),
    "drink": ("water", "milk", "wine", "beer", "coffee", "tea", "juice"),
    "plant": ("tree", "rose", "grass", "seed", "bush", "flower"),
    "feed": ("pig", "sheep", "bird", "tiger"),
    "eat": ("bread", "soup", "meat"),
}
CHOOSE_INSTRUCTIONS = ("{V} one of these.", "Choose one to {v}.", "Which one can you {v}?", "Pick something to {v}.")
TRANSLATE_INSTRUCTIONS = (
    "Translate {w} into Zorbish.",
    "What is {w} in Zorbish?",
    "Say {w} in Zorbish.",
    "Give the Zorbish word for {w}.",
)
TASKS = ("choose", "translate")
CONTEXT_WORDS = 4  # categories named in a choose prompt
T = TypeVar("T")
FOLLOWED, UNFOLLOWED = 2.0, 0.0  # ratings on the paper's scale (followed >= 2)
CONSONANTS = "bdfgklmnprstvz"
ACCENTED = "áéíóúäöü"  # every invented word has one: the lexical annotator tags it non-English


def category_words() -> list[str]:
    """Every word a choose prompt can name, in category order."""
    return [w for words in CATEGORIES.values() for w in words]


def invented_lexicon(words: Sequence[str], seed: int = 12345) -> dict[str, str]:
    """English word → a distinct invented Zorbish word: consonant, accented vowel, consonant (none is a prefix
    of another, so each becomes one token)."""
    rng = random.Random(seed)
    lexicon: dict[str, str] = {}
    used: set[str] = set()
    for word in words:
        while True:
            z = rng.choice(CONSONANTS) + rng.choice(ACCENTED) + rng.choice(CONSONANTS)
            if z not in used:
                break
        used.add(z)
        lexicon[word] = z
    return lexicon


@dataclass(frozen=True)
class Prompt:
    """One prompt of a planted task: its text, instruction span and position, and the responses."""

    id: str
    task: str
    prompt: str
    instruction_span: tuple[int, int]
    position: str  # "first" or "last"
    reference: str  # the followed response
    unfollowed: str  # a response that ignores the instruction
    word: str  # the answer's English word
    answer: str  # the word the reply must give (the picked word or its translation)
    query: str | None = None  # choose: the instruction verb


def place(instruction: str, context: str, first: bool) -> tuple[str, tuple[int, int]]:
    """The prompt text and the instruction's [start, end) character span."""
    if first:
        return f"{instruction} {context}", (0, len(instruction))
    return f"{context} {instruction}", (len(context) + 1, len(context) + 1 + len(instruction))


def word_list(rng: random.Random) -> tuple[list[str], list[str]]:
    """A context's verbs and words: one word of each of `CONTEXT_WORDS` random categories (verbs in pick order)."""
    verbs = rng.sample(list(CATEGORIES), CONTEXT_WORDS)
    return verbs, [rng.choice(CATEGORIES[v]) for v in verbs]


def list_context(words: Sequence[str], rng: random.Random) -> str:
    """The context sentence naming the words in random order (the same form for every task)."""
    words = list(words)
    rng.shuffle(words)
    return f"Here are {', '.join(words[:-1])} and {words[-1]}."


def planted_prompt(
    task: str,
    index: int,
    first: bool,
    instruction: str,
    context: str,
    reference: str,
    word: str,
    answer: str,
    query: str | None = None,
) -> Prompt:
    """A prompt of either task: the instruction placed first or last beside the context, which the unfollowed
    response repeats."""
    text, span = place(instruction, context, first)
    return Prompt(
        id=f"{task}-{index:04d}",
        task=task,
        prompt=text,
        instruction_span=span,
        position="first" if first else "last",
        reference=reference,
        unfollowed=context,
        word=word,
        answer=answer,
        query=query,
    )


def choose_prompt(index: int, first: bool, rng: random.Random) -> Prompt:
    """A choose prompt: four words of distinct categories, one verb picking one of them."""
    verbs, words = word_list(rng)
    verb, word = verbs[0], words[0]
    context = list_context(words, rng)
    instruction = rng.choice(CHOOSE_INSTRUCTIONS).format(V=verb.capitalize(), v=verb)
    return planted_prompt("choose", index, first, instruction, context, f"I {verb} {word}.", word, word, verb)


def translate_prompt(index: int, first: bool, entry: WordEntry, zorbish: dict[str, str], rng: random.Random) -> Prompt:
    """A translate prompt: the instruction names the English word; the context is a choose prompt's word list,
    so only the instruction tells the two tasks apart."""
    context = list_context(word_list(rng)[1], rng)
    instruction = rng.choice(TRANSLATE_INSTRUCTIONS).format(w=entry.word)
    answer = zorbish[entry.word]
    return planted_prompt(
        "translate", index, first, instruction, context, f"In Zorbish it is {answer}.", entry.word, answer
    )


def balanced(n: int, rng: random.Random) -> list[bool]:
    """``n`` instruction-first flags, exactly half True (n even), in random order."""
    flags = [i < n // 2 for i in range(n)]
    rng.shuffle(flags)
    return flags


def make_prompts(
    n_choose: int,
    translate_words: Sequence[WordEntry],
    zorbish: dict[str, str],
    seed: int,
    repeats: int = 1,
    start: int = 0,
) -> list[Prompt]:
    """``n_choose`` choose prompts and ``repeats`` translate prompts per word, positions balanced per task."""
    rng = random.Random(seed)
    prompts = [choose_prompt(start + i, f, rng) for i, f in enumerate(balanced(n_choose, rng))]
    items = [e for _ in range(repeats) for e in translate_words]
    flags = balanced(len(items), rng)
    prompts += [translate_prompt(start + i, f, e, zorbish, rng) for i, (e, f) in enumerate(zip(items, flags))]
    return prompts


def take_turns(groups: Sequence[Sequence[T]]) -> list[T]:
    """The groups' items taken in turn (the first of each, then the second of each, ...): any first N are balanced."""
    return [g[i] for i in range(max(map(len, groups), default=0)) for g in groups if i < len(g)]


def interleaved(prompts: Sequence[Prompt]) -> list[Prompt]:
    """The prompts taken in turn from each (task, position) group, in order of first appearance."""
    groups: dict[tuple[str, str], list[Prompt]] = {}
    for p in prompts:
        groups.setdefault((p.task, p.position), []).append(p)
    return take_turns(list(groups.values()))


def control_span(prompt: Prompt, offsets: Sequence[tuple[int, int]], rng: random.Random) -> tuple[int, int]:
    """A context span with as many tokens as the instruction, never overlapping it (random start)."""
    a, b = prompt.instruction_span
    inside = [i for i, (s, e) in enumerate(offsets) if s < b and e > a]
    context = [i for i, (s, e) in enumerate(offsets) if not (s < b and e > a) and e > s]
    n = len(inside)
    runs = [context[i : i + n] for i in range(len(context) - n + 1)]
    runs = [r for r in runs if r[-1] - r[0] == n - 1]  # contiguous
    if not runs:
        raise ValueError(f"prompt {prompt.id}: the context has fewer than {n} tokens")
    run = rng.choice(runs)
    return offsets[run[0]][0], offsets[run[-1]][1]


def records(prompts: Sequence[Prompt], offsets: Callable[[str], list[tuple[int, int]]], seed: int) -> list[dict]:
    """The prompts.jsonl records: a followed and an unfollowed record per prompt (contract fields)."""
    rng = random.Random(seed)
    out = []
    for p in prompts:
        control = control_span(p, offsets(p.prompt), rng)
        common = {
            "task": p.task,
            "group": p.task,
            "prompt": p.prompt,
            "instruction_spans": [list(p.instruction_span)],
            "control_spans": [list(control)],
            "position": p.position,
            "reference": p.reference,
            "word": p.word,
            "answers": [p.answer],
        }
        if p.query:
            common["query"] = p.query
        out.append({"id": f"{p.id}-followed", **common, "response": p.reference, "rating": FOLLOWED})
        out.append({"id": f"{p.id}-unfollowed", **common, "response": p.unfollowed, "rating": UNFOLLOWED})
    return out


def is_correct(record: dict, reply: str) -> bool:
    """Whether a reply states the reference's answer in its form (exact sentence up to case and spaces)."""
    norm = lambda s: re.sub(r"\s+", " ", s.strip().lower())  # noqa: E731
    return norm(reply) == norm(record["reference"])


def accuracy(records_: Sequence[dict], replies: Sequence[str]) -> dict:
    """Per-task follow accuracy (and the mean over tasks) of replies to the records' prompts."""
    per_task = {}
    for task in TASKS:
        hits = [is_correct(r, a) for r, a in zip(records_, replies) if r["task"] == task]
        if hits:
            per_task[task] = {"accuracy": sum(hits) / len(hits), "n": len(hits)}
    return {"mean": sum(v["accuracy"] for v in per_task.values()) / max(len(per_task), 1), "tasks": per_task}
