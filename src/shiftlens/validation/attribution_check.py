"""Attribution against ground truth: instruction scores of two models on the same responses, and their tests.

Every model explains the identical token sequence of each record (the prompt in the tuned tokenizer's chat
format, then the record's ``response``); a record's instruction score is the paper's score over its
instruction tokens, its control score the same score over its ``control_spans`` (as many context tokens,
never overlapping the instruction). Tests (sound protocol, `shiftlens.stats`, guarded by
`shiftlens.evidence`): the instruction score other vs base (paired sign-flip), the tuning gain of the
instruction beyond its control span's (paired sign-flip), the same gain beyond that of every placement of
the instruction's shape in the prompt (the sound protocol's Table 2 placement randomization,
`shiftlens.attribution.nulls`), and Table 1: how well the score beyond the control span tells followed
(rating ≥ 2) from unfollowed responses, as ROC-AUC; the headline is the other model's AUC against the
base's on the same records (paired permutation), since any model attributes a response that copies the
context to the context; the other model's own followed-vs-unfollowed test is kept beside it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from shiftlens import stats
from shiftlens.analysis.instruction_tables import _placement_finding
from shiftlens.attribution import nulls
from shiftlens.attribution.core import attribute_many
from shiftlens.density import importance_density, instruction_score
from shiftlens.evidence import Finding
from shiftlens.prompting import PromptError, build_sequence
from shiftlens.spans import token_mask

METHOD = "attribution"
FOLLOWED = 2.0  # a rating at least this means the response follows the instruction


@dataclass(frozen=True)
class PromptSet:
    """The sequences every model explains, with each record's instruction and control masks and label."""

    ids: list[str]
    sequences: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]
    instruction: list[np.ndarray]
    control: list[np.ndarray]
    followed: np.ndarray
    skipped: dict[str, str]


def prompt_set(records: list[dict[str, Any]], model: Any, fmt: Any, tokenizer: Any) -> PromptSet:
    """The records as attribution inputs; a record that cannot be one (empty response, too long) is skipped."""
    ids, sequences, instruction, control, followed, skipped = [], [], [], [], [], {}
    for record in records:
        try:
            seq = build_sequence(model, fmt, tokenizer, record["prompt"], record["response"], record["id"])
        except PromptError as exc:
            skipped[record["id"]] = str(exc)
            continue
        offsets = seq.prompt.offsets
        ids.append(record["id"])
        sequences.append((seq.input_ids, seq.prompt_positions, seq.response_positions))
        instruction.append(token_mask(offsets, [tuple(s) for s in record["instruction_spans"]]))
        control.append(token_mask(offsets, [tuple(s) for s in record["control_spans"]]))
        followed.append(float(record["rating"]) >= FOLLOWED)
    return PromptSet(ids, sequences, instruction, control, np.array(followed, dtype=bool), skipped)


@dataclass(frozen=True)
class Scores:
    """One model's importance density of every record's prompt tokens, and its instruction and control scores."""

    densities: list[np.ndarray]
    spans: np.ndarray  # (records × 2): instruction score, control score (NaN without a control span)


def span_scores(model: Any, prompts: PromptSet) -> Scores:
    """Attribute every record under ``model``: densities and (instruction, control) scores."""
    densities = [importance_density(matrix.numpy()) for matrix in attribute_many(model, prompts.sequences)]
    out = np.full((len(densities), 2), np.nan)
    for i, density in enumerate(densities):
        out[i, 0] = instruction_score(density, prompts.instruction[i])
        if prompts.control[i].any():
            out[i, 1] = instruction_score(density, prompts.control[i])
    return Scores(densities, out)


def placement_finding(base: Scores, other: Scores, prompts: PromptSet, label: str, seed: int = 0) -> Finding:
    """The instruction's gain beyond that of every placement of its shape (placement randomization)."""
    sets = [
        nulls.null_stats(i, "", (b, o), mask).gains
        for i, b, o, mask in zip(prompts.ids, base.densities, other.densities, prompts.instruction, strict=True)
        if nulls.has_control(mask)
    ]
    claim = f"{label} raises the instruction's score {{more|less}} than that of every placement of its shape"
    return _placement_finding(claim, sets, seed)


def _directed(finding: Finding, up: str, down: str) -> Finding:
    """The claim with "{dir}" worded by the effect's sign."""
    word = down if finding.effect_size is not None and finding.effect_size < 0 else up
    return Finding(**{**vars(finding), "claim": finding.claim.replace("{dir}", word)})


def compare_scores(
    base_scores: Scores, other_scores: Scores, prompts: PromptSet, label: str, seed: int = 0
) -> tuple[dict[str, Any], dict[str, Finding]]:
    """Figures and findings (attribution, attribution_control, attribution_placement, table1: the AUC against
    the base's) of other vs base."""
    base, other, followed = base_scores.spans, other_scores.spans, prompts.followed
    has_control = np.isfinite(base[:, 1]) & np.isfinite(other[:, 1])
    gain = other - base
    score = _directed(
        stats.paired_finding(METHOD, f"{label} {{dir}} the instruction score", base[:, 0], other[:, 0], seed=seed),
        "raises",
        "lowers",
    )
    control = _directed(
        stats.paired_finding(
            METHOD,
            f"{label} {{dir}} the instruction's score more than its control span's",
            gain[has_control, 1],
            gain[has_control, 0],
            seed=seed,
        ),
        "raises",
        "lowers",
    )
    excess = other[has_control, 0] - other[has_control, 1]
    excess_base = base[has_control, 0] - base[has_control, 1]
    labels = followed[has_control]
    table1 = _directed(
        stats.paired_auc_finding(
            METHOD,
            f"{label} {{dir}} how well the instruction score beyond the control span tells followed from "
            "unfollowed responses (Table 1's AUC, against the base's on the same records)",
            excess_base,
            excess,
            labels,
            seed=seed,
        ),
        "raises",
        "lowers",
    )
    within = _directed(
        stats.two_sample_finding(
            METHOD,
            f"{label}: the instruction score beyond the control span is {{dir}} for followed than unfollowed responses",
            excess[~labels],
            excess[labels],
            seed=seed,
        ),
        "higher",
        "lower",
    )
    figures = {
        "instruction_score_base": stats.finite(float(np.mean(base[:, 0]))) if len(base) else None,
        "instruction_score": stats.finite(float(np.mean(other[:, 0]))) if len(other) else None,
        "n_records": int(len(base)),
        "n_with_control": int(has_control.sum()),
        "n_followed": int(followed.sum()),
        "n_unfollowed": int((~followed).sum()),
        "table1_auc": stats.finite(stats.roc_auc(excess, labels)) if has_control.any() else None,
        "table1_auc_base": stats.finite(stats.roc_auc(excess_base, labels)) if has_control.any() else None,
        "table1_within_p": stats.finite(within.p_value),
        "table1_within_reason": within.reason,
        "table1_within_effect": stats.finite(within.effect_size),
        "table1_auc_instruction": stats.finite(stats.roc_auc(other[:, 0], followed)),
    }
    placement = placement_finding(base_scores, other_scores, prompts, label, seed)
    found = {"attribution": score, "attribution_control": control, "attribution_placement": placement}
    return figures, {**found, "table1": table1}
