"""Follow accuracy by greedy generation, where the records carry a task the organism's evaluator knows.

A record is scorable when its ``task`` (or ``group``) is one of the organism's planted tasks
(`shiftlens.organism.planted.TASKS`) and it carries the ``reference`` reply the evaluator checks a reply
against (`planted.is_correct`); otherwise follow accuracy is "not measured", with the reason. A prompt that
several records share (followed and unfollowed) is generated and scored once.
"""

from __future__ import annotations

from typing import Any

from shiftlens.prompting import PromptError, generate

MAX_NEW_TOKENS = 40


def scorable(records: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], str | None]:
    """One record per distinct prompt, or (empty, why not) when some record cannot be scored."""
    from shiftlens.organism.planted import TASKS

    for record in records:
        task = record.get("task", record.get("group"))
        if task not in TASKS or "reference" not in record:
            return [], f"record {record['id']!r} has no task the organism's evaluator knows (task {task!r})"
    first: dict[str, dict[str, Any]] = {}
    for record in records:
        first.setdefault(record["prompt"], record)
    return list(first.values()), None


def follow_accuracy(model: Any, fmt: Any, tokenizer: Any, examples: list[dict[str, Any]]) -> float:
    """The share of prompts whose greedy reply follows the instruction (the reference sentence)."""
    from shiftlens.organism.planted import is_correct

    hits = 0
    for example in examples:
        try:
            reply = generate(model, fmt, tokenizer, example["prompt"], MAX_NEW_TOKENS, example["id"])
        except PromptError:  # an empty reply follows nothing
            continue
        hits += is_correct(example, reply)
    return hits / len(examples)
