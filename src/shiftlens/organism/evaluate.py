"""Greedy replies of an organism model to user prompts in its chat format (the build scores them with
`shiftlens.organism.planted.accuracy`)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from shiftlens.organism.chat import END, render
from shiftlens.progress import progress


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
