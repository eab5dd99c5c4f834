"""Instruction-following accuracy: greedy responses scored per task against WordNet's answers.

A response's first sentence must state the asked fact in its form ("The opposite of large is ...");
the stated answer is then scored: exact match for part of speech, membership for synonyms (each one
listed) and antonyms, content-word overlap (F1 ≥ 0.3 with some definition) for definitions, and "a
sentence of ≥ 3 words containing the word" for example sentences.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

import torch

from shiftlens.organism.chat import END, render
from shiftlens.organism.tasks import TASKS, TaskExample
from shiftlens.progress import progress

DEFINITION_F1 = 0.3
STOPWORDS = frozenset(
    "a an the of or and to in on for with by as at from that which who is are be been being it its "
    "this these those something someone some any not no into out up about than".split()
)


def normalize(text: str) -> str:
    """Lowercase, single spaces, no surrounding punctuation."""
    return " ".join(re.sub(r"[^\w\s'-]", " ", text.lower()).split())


def content_words(text: str) -> set[str]:
    """The set of non-stopword words of a text."""
    return {w for w in normalize(text).split() if w not in STOPWORDS}


def overlap_f1(response: str, reference: str) -> float:
    """F1 of the content words shared by a response and a reference (0 when either has none)."""
    got, want = content_words(response), content_words(reference)
    shared = len(got & want)
    if not shared:
        return 0.0
    precision, recall = shared / len(got), shared / len(want)
    return 2 * precision * recall / (precision + recall)


ANSWER_PATTERNS = {
    "pos": r"the word {w} is an? (\w+)",
    "definition": r"the word {w} means (.+?)",
    "synonym": r"the word {w} is similar to (.+?)",
    "antonym": r"the opposite of {w} is (.+?)",
    "sentence": r"the word {w} is used like this: (.+?)",
}


def extract_answer(example: TaskExample, response: str) -> str | None:
    """The answer stated by the response's first sentence in the task's form, or None if not in that form."""
    pattern = ANSWER_PATTERNS[example.task].format(w=re.escape(example.word))
    match = re.match(pattern + r"(?:\.\s|\.?$)", response.strip().lower())
    return match.group(1) if match else None


def is_correct(example: TaskExample, response: str) -> bool:
    """Whether a response follows the example's instruction: the asked fact, in its form, and right."""
    answer = extract_answer(example, response)
    if answer is None:
        return False
    accepted = {normalize(a) for a in example.answers}
    if example.task in ("pos", "antonym"):
        return normalize(answer) in accepted
    if example.task == "synonym":
        return all(normalize(part) in accepted for part in answer.split(" and "))
    if example.task == "definition":
        return max(overlap_f1(answer, a) for a in example.answers) >= DEFINITION_F1
    return len(answer.split()) >= 3 and re.search(rf"\b{re.escape(example.word)}", answer) is not None


@torch.no_grad()
def greedy_responses(
    model: Any, tokenizer: Any, prompts: Sequence[str], *, max_new_tokens: int = 40, batch_size: int = 32
) -> list[str]:
    """Greedy replies to user prompts in the organism's chat format, cut at the end-of-turn token."""
    end_id = tokenizer.convert_tokens_to_ids(END)
    side = tokenizer.padding_side
    tokenizer.padding_side = "left"
    replies: list[str] = []
    try:
        starts = range(0, len(prompts), batch_size)
        for start in progress(starts, total=len(starts), desc="generate", unit="batch"):
            texts = [render(p) for p in prompts[start : start + batch_size]]
            batch = tokenizer(texts, return_tensors="pt", padding=True)
            out = model.generate(
                **batch,
                max_new_tokens=max_new_tokens,
                do_sample=False,
                eos_token_id=[end_id, tokenizer.eos_token_id],
                pad_token_id=tokenizer.pad_token_id,
            )
            for row in out[:, batch["input_ids"].shape[1] :].tolist():
                cut = next((i for i, t in enumerate(row) if t in (end_id, tokenizer.eos_token_id)), len(row))
                replies.append(tokenizer.decode(row[:cut], skip_special_tokens=True).strip())
    finally:
        tokenizer.padding_side = side
    return replies


def accuracy(examples: Sequence[TaskExample], responses: Sequence[str]) -> dict[str, Any]:
    """Per-task accuracy, counts and the mean over tasks present."""
    per_task = {}
    for task in TASKS:
        hits = [is_correct(e, r) for e, r in zip(examples, responses) if e.task == task]
        if hits:
            per_task[task] = {"accuracy": sum(hits) / len(hits), "n": len(hits)}
    mean = sum(v["accuracy"] for v in per_task.values()) / max(len(per_task), 1)
    return {"mean": mean, "tasks": per_task}
