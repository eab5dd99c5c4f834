"""Planted-signal check (a): instruction scores of base and tuned explaining the same response tokens.

Both models get the identical chat-formatted token sequence (prompt, then the tuned model's response);
sources are the user prompt's own tokens, targets the response tokens (not the end-of-turn marker).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from shiftlens.density import DensityParams, importance_density, instruction_score
from shiftlens.organism.chat import render


@dataclass(frozen=True)
class AttributionInput:
    """One example's token ids and which positions are prompt sources, response targets, instruction."""

    input_ids: torch.Tensor  # (T,)
    source_positions: torch.Tensor  # (N,) the user prompt's tokens
    target_positions: torch.Tensor  # (M,) the response's tokens
    instruction_mask: np.ndarray  # (N,) bool: source token overlaps an instruction span


def attribution_input(tokenizer: Any, record: dict[str, Any]) -> AttributionInput:
    """The sequence and positions of a demo-prompt record (``prompt``, ``response``, ``instruction_spans``)."""
    prompt = tokenizer(record["prompt"], return_offsets_mapping=True)
    chat = tokenizer(render(record["prompt"]))["input_ids"]
    response = tokenizer(record["response"])["input_ids"]
    start = 1  # after the user marker
    if chat[start : start + len(prompt["input_ids"])] != prompt["input_ids"]:
        raise ValueError(f"example {record['id']!r}: prompt tokens differ inside the chat format")
    spans = record["instruction_spans"]
    mask = np.array([any(s < b and e > a for a, b in spans) for s, e in prompt["offset_mapping"]], dtype=bool)
    return AttributionInput(
        input_ids=torch.tensor(chat + response),
        source_positions=torch.arange(start, start + len(prompt["input_ids"])),
        target_positions=torch.arange(len(chat), len(chat) + len(response)),
        instruction_mask=mask,
    )


def example_score(model: Any, example: AttributionInput, params: DensityParams | None = None) -> float:
    """The paper's instruction score of one example under one model (gradient × input, probability)."""
    from shiftlens.attribution.core import attribute

    matrix = attribute(model, example.input_ids, example.source_positions, example.target_positions)
    density = importance_density(matrix.numpy(), params or DensityParams())
    return instruction_score(density, example.instruction_mask)


def instruction_verbs() -> list[str]:
    """The verbs the organism's instructions are phrased with (the planted instruction words for heads)."""
    from shiftlens.organism.tasks import INSTRUCTIONS

    first = {phrasing.split()[0].lower() for phrasings in INSTRUCTIONS.values() for phrasing in phrasings}
    return sorted(first - {"what", "is"})


def span_mask(tokenizer: Any, prompt: str, spans: list[list[int]]) -> np.ndarray:
    """(N,) bool over the prompt's tokens: the token overlaps one of the [start, end) character spans."""
    offsets = tokenizer(prompt, return_offsets_mapping=True)["offset_mapping"]
    return np.array([any(s < b and e > a for a, b in spans) for s, e in offsets], dtype=bool)


def span_scores(model: Any, tokenizer: Any, records: list[dict[str, Any]]) -> dict[str, np.ndarray]:
    """Per record, the instruction score of its instruction span and of its control span under one model."""
    from shiftlens.attribution.core import attribute

    instruction, control = [], []
    for record in records:
        example = attribution_input(tokenizer, record)
        matrix = attribute(model, example.input_ids, example.source_positions, example.target_positions)
        density = importance_density(matrix.numpy(), DensityParams())
        instruction.append(instruction_score(density, example.instruction_mask))
        control.append(instruction_score(density, span_mask(tokenizer, record["prompt"], record["control_spans"])))
    return {"instruction": np.array(instruction), "control": np.array(control)}


def planted_pairs(ground_truth: dict[str, Any]) -> set[tuple[str, str]]:
    """The planted (query word, key word) relations of a ground_truth.json."""
    return {(r["query"], k) for r in ground_truth["heads"]["relations"] for k in r["keys"]}


def heads_recovery(rows: dict[str, np.ndarray], ground_truth: dict[str, Any]) -> dict[str, Any]:
    """Recall of the planted relations among a heads run's pairs (in the planted layers), and precision:
    the share of the pairs whose query is a planted query word that are planted relations."""
    planted = planted_pairs(ground_truth)
    layers = ground_truth["heads"]["layers"]
    keep = np.ones(len(rows["layer"]), dtype=bool) if layers is None else np.isin(rows["layer"], layers)
    queries = {q for q, _ in planted}
    found = {(q, k) for q, k in zip(rows["query"][keep], rows["key"][keep])}
    with_query = {(q, k) for q, k in found if q in queries}
    hits = planted & found
    per_head: dict[str, int] = {}
    for layer, head, q, k in zip(rows["layer"][keep], rows["head"][keep], rows["query"][keep], rows["key"][keep]):
        if (q, k) in planted:
            per_head[f"{layer}.{head}"] = per_head.get(f"{layer}.{head}", 0) + 1
    return {
        "recall": len(hits) / len(planted),
        "precision": len(hits) / len(with_query) if with_query else None,
        "n_planted": len(planted),
        "n_found": len(hits),
        "n_pairs_with_planted_query": len(with_query),
        "planted_pair_rows_by_head": dict(sorted(per_head.items())),
    }


def ffn_recovery(
    top_words: list[list[str]], planted: list[str], population: list[str], min_words: int = 3, draws: int = 999
) -> dict[str, Any]:
    """Whether components' top words hold the planted words: the share of planted words found in components
    holding at least ``min_words`` of them (recall), beside random word sets of the same size (the null,
    p = (1 + draws at least as high) / (1 + draws))."""

    def recall(words: set[str]) -> float:
        covered = set()
        for top in top_words:
            inside = words.intersection(top)
            if len(inside) >= min_words:
                covered |= inside
        return len(covered) / len(words)

    target = set(planted)
    observed = recall(target)
    others = [w for w in population if w not in target]
    rng = np.random.default_rng(0)
    null = [recall(set(rng.choice(others, size=len(target), replace=False).tolist())) for _ in range(draws)]
    holding = [i for i, top in enumerate(top_words) if len(target.intersection(top)) >= min_words]
    return {
        "recall": observed,
        "components_holding": len(holding),
        "component_indices": holding,
        "null_recall_mean": float(np.mean(null)),
        "p_value": (1 + sum(n >= observed for n in null)) / (1 + draws),
    }
