"""Instruction → response pairs made from WordNet entries, with varied phrasings and a held-out word split.

A prompt is an instruction sentence plus a context of 2–3 dictionary sentences stating the word's *other*
facts (never the asked one), in either order; the instruction sentence's character span is recorded so
attribution can tell instruction tokens apart. A base model continues such a context; the tuned model must
read the instruction to know which fact to state. The reference response is the fact's sentence from the
pre-training corpus ("The opposite of large is small."): tuning teaches which fact an instruction asks
for, not the facts themselves.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from shiftlens.organism.corpus import WordEntry, fact_sentences

INSTRUCTIONS: dict[str, tuple[str, ...]] = {
    "definition": (
        "Define this word.",
        "What does this word mean?",
        "Explain the meaning of this word.",
        "Give the definition of this word.",
    ),
    "synonym": (
        "Give a synonym of this word.",
        "Name a word with the same meaning.",
        "What is another word for it?",
        "Find a word that means the same.",
    ),
    "sentence": (
        "Write a sentence using this word.",
        "Use this word in a sentence.",
        "Make an example sentence with this word.",
        "Show how this word is used in a sentence.",
    ),
    "pos": (
        "Classify this word as a noun, verb, adjective or adverb.",
        "Is this word a noun, verb, adjective or adverb?",
        "What part of speech is this word?",
        "Tell me the part of speech of this word.",
    ),
    "antonym": (
        "Give the opposite of this word.",
        "What is the opposite of this word?",
        "Name an antonym of this word.",
        "Give a word with the opposite meaning.",
    ),
}
TASKS = tuple(INSTRUCTIONS)
CONTEXT_SENTENCES = (2, 3)  # how many of the word's other facts a prompt states (fewer if it has fewer)


@dataclass(frozen=True)
class TaskExample:
    """One instruction prompt for a word, its reference response and every answer counted as correct."""

    id: str
    word: str
    task: str
    prompt: str
    instruction_span: tuple[int, int]  # [start, end) characters of the instruction sentence in prompt
    response: str
    answers: tuple[str, ...]


def task_answers(entry: WordEntry, task: str) -> tuple[str, ...]:
    """Accepted answers of a task for a word (empty when the word has none, e.g. no antonym)."""
    if task == "definition":
        return tuple(entry.definitions)
    if task == "synonym":
        return tuple(entry.synonyms)
    if task == "antonym":
        return tuple(entry.antonyms)
    if task == "pos":
        return (entry.pos,) if entry.unique_pos else ()
    return (entry.example,) if entry.example else ()


def context_text(entry: WordEntry, task: str, rng: random.Random) -> str:
    """2–3 of the word's fact sentences other than ``task``'s, in random order: what a base model continues."""
    facts = fact_sentences(entry)
    others = [sentence for name, sentence in facts.items() if name != task]
    rng.shuffle(others)
    return " ".join(others[: rng.randint(*CONTEXT_SENTENCES)])


def make_example(entry: WordEntry, task: str, rng: random.Random) -> TaskExample | None:
    """A prompt of ``task`` for ``entry`` with a random phrasing, context and order; None if n/a."""
    answers = task_answers(entry, task)
    if not answers:
        return None
    instruction = rng.choice(INSTRUCTIONS[task])
    context = context_text(entry, task, rng)
    if rng.random() < 0.5:
        prompt, span = f"{instruction} {context}", (0, len(instruction))
    else:
        prompt, span = f"{context} {instruction}", (len(context) + 1, len(context) + 1 + len(instruction))
    return TaskExample(
        id=f"{task}-{entry.word}",
        word=entry.word,
        task=task,
        prompt=prompt,
        instruction_span=span,
        response=fact_sentences(entry)[task],
        answers=answers,
    )


def split_words(entries: list[WordEntry], held_out: float, seed: int) -> tuple[list[WordEntry], list[WordEntry]]:
    """(tuning words, held-out words): a seeded shuffle; held-out words never appear in tuning pairs."""
    order = sorted(entries, key=lambda e: e.word)
    random.Random(seed).shuffle(order)
    cut = round(len(order) * held_out)
    return order[cut:], order[:cut]


def make_examples(entries: list[WordEntry], seed: int) -> list[TaskExample]:
    """One example per (word, applicable task), phrasings drawn from a seeded generator."""
    rng = random.Random(seed)
    examples = [make_example(entry, task, rng) for entry in entries for task in TASKS]
    return [e for e in examples if e is not None]


def to_record(example: TaskExample) -> dict:
    """The demo-prompt JSON fields of an example (attribution data format: id, prompt, spans, group)."""
    return {
        "id": example.id,
        "prompt": example.prompt,
        "instruction_spans": [list(example.instruction_span)],
        "group": example.task,
        "word": example.word,
        "reference": example.response,
        "answers": list(example.answers),
    }


def from_record(record: dict) -> TaskExample:
    """The example a demo-prompt record was written from (inverse of `to_record`)."""
    return TaskExample(
        id=record["id"],
        word=record["word"],
        task=record["group"],
        prompt=record["prompt"],
        instruction_span=tuple(record["instruction_spans"][0]),
        response=record["reference"],
        answers=tuple(record["answers"]),
    )
