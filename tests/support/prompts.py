"""Two short unrated prompts with instruction spans and responses: the smallest data a comparison runs on."""

from __future__ import annotations

SHORT_ROWS: tuple[dict, ...] = (
    {"id": "a", "prompt": "Define this word. The word is cat.", "instruction_spans": [[0, 17]], "response": "A cat."},
    {"id": "b", "prompt": "The word is dog. Give a synonym.", "instruction_spans": [[17, 32]], "response": "Hound."},
)
