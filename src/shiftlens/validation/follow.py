"""Follow accuracy by greedy generation, where the records carry a task the organism's evaluator knows.

A record is scorable when its ``task`` (or ``group``) is one of `shiftlens.organism.tasks.TASKS` and it
carries the ``word`` and ``answers`` the evaluator checks a reply against (`shiftlens.organism.evaluate`);
otherwise follow accuracy is "not measured", with the reason.
"""

from __future__ import annotations

from typing import Any

from shiftlens.prompting import PromptError, generate

MAX_NEW_TOKENS = 40


def scorable(records: list[dict[str, Any]]) -> tuple[list[Any], str | None]:
    """The records as the evaluator's examples, or (empty, why not) when some record cannot be scored."""
    from shiftlens.organism.tasks import TASKS, from_record

    for record in records:
        task = record.get("task", record.get("group"))
        if task not in TASKS or "word" not in record or "answers" not in record:
            return [], f"record {record['id']!r} has no task the organism's evaluator knows (task {task!r})"
    return [from_record({**r, "group": r.get("task", r.get("group"))}) for r in records], None


def follow_accuracy(model: Any, fmt: Any, tokenizer: Any, examples: list[Any]) -> float:
    """The share of examples whose greedy reply follows the instruction (the evaluator's per-task rule)."""
    from shiftlens.organism.evaluate import is_correct

    hits = 0
    for example in examples:
        try:
            reply = generate(model, fmt, tokenizer, example.prompt, MAX_NEW_TOKENS, example.id)
        except PromptError:  # an empty reply follows nothing
            continue
        hits += is_correct(example, reply)
    return hits / len(examples)
