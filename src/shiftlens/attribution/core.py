"""Gradient × input attribution of response tokens to prompt tokens, exact and fast.

Entry (n, j) is ``e_n · ∇_{e_n} f_j``: the input embedding of source token n dotted with the gradient of
target j's objective (its probability by default, predicted from the logits one position earlier). The
gradient of each objective w.r.t. the final hidden state comes in closed form (a cheap float32 autograd pass
over the unembedding rows of the response positions only, `head_gradients`); then one of two modes:

* **reverse** ("batched", "loop"): the targets are split into chunks, one forward per chunk runs on the prefix
  that ends at the chunk's last target (causal attention makes the prefix's activations identical to the full
  sequence's), and each target's head gradient is back-propagated to the embeddings: one vmapped backward
  per chunk ("batched") or one backward per target with the graph retained ("loop"). Cost ~ M · (N + M/2).
* **forward** ("forward"): entry (n, j) is the directional derivative of f_j along e_n at position n, so one
  JVP per source, with tangent e_n at position n and zero elsewhere, gives the whole row: the tangent of the
  final hidden state at every target's row, dotted with that target's head gradient (the chain rule through
  the nonlinear objective). Chunks of sources are vmapped over one primal forward. Cost ~ N · (N + M).

"auto" picks the cheaper mode and the chunk size from a cost model and a memory budget
(`shiftlens.attribution.plan`); on failure (an op without a vmap or forward-AD rule) it falls back from
forward to batched to loop with a warning. `attribute_many` attributes several examples at once, padded
into one batch per round (left or right, with attention mask and explicit position ids): the throughput path
for GPUs. Examples never interact, so one seed (reverse) or tangent (forward) carries one target or source
of every example of the batch at once.

In bfloat16/float16 models the precision-sensitive steps run in float32: the objective's softmax and
head gradient, the gradient × input dot product over the hidden dimension (forward mode: the head gradient ·
tangent dot product), the returned matrix. Each reverse seed is scaled by a power of two to a maximum of
about 1 before it enters the model's dtype and the scale is put back in float32 (per-target loss scaling):
without it, the gradient of a token of probability 1e-9 underflows to zero in float16. Powers of two keep
float32 results bit-exact. Forward mode needs no scaling: its tangents are embeddings, and the small head
gradients multiply in float32 only after the model.

Parameters never get gradients: they are frozen for the call and restored afterwards.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from shiftlens.attribution import plan as planning
from shiftlens.attribution.gradients import (
    Padded,
    forward_round,
    frozen,
    gradient_times_input,
    head_gradients,
    reverse_round,
    wide,
)
from shiftlens.attribution.inputs import (
    OBJECTIVES,
    PADDING,
    AttributionError,
    AttributionInputError,
    validate,
    validate_options,
)
from shiftlens.attribution.memory import estimated_activation_bytes, weight_bytes
from shiftlens.attribution.plan import DEFAULT_CHUNK, DEFAULT_MEMORY_BUDGET, MODES, Plan

__all__ = [
    "DEFAULT_CHUNK",
    "DEFAULT_MEMORY_BUDGET",
    "MODES",
    "OBJECTIVES",
    "PADDING",
    "AttributionError",
    "AttributionInputError",
    "Plan",
    "attribute",
    "attribute_many",
]

FALLBACK = {"forward": "batched", "batched": "loop"}  # what "auto" runs when a mode fails on a model


@dataclass(frozen=True)
class _Sequence:
    """One validated sequence: ids, sources and targets (CPU) and its input embeddings on the model's device."""

    ids: torch.Tensor
    sources: torch.Tensor
    targets: torch.Tensor
    embeds: torch.Tensor

    def prefix(self, end: int) -> torch.Tensor:
        """The embeddings of positions [0, end)."""
        return self.embeds[:end]


def _layout(parts: Sequence[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """For per-sequence index chunks: the batch row of each item and its slot (index within its chunk)."""
    example = torch.cat([torch.full((len(p),), i, dtype=torch.long) for i, p in enumerate(parts)])
    slots = torch.cat([torch.arange(len(p)) for p in parts])
    return example, slots


def _live(chunks: Sequence[Sequence[torch.Tensor]], r: int) -> list[tuple[int, torch.Tensor]]:
    """(sequence index, its chunk r) for every sequence that has an r-th chunk."""
    return [(b, c[r]) for b, c in enumerate(chunks) if len(c) > r]


def _run_reverse(
    model: Any, seqs: Sequence[_Sequence], chunk: int, objective: str, batched: bool, padding: str
) -> list[torch.Tensor]:
    """Reverse mode: round r pads chunk r of every sequence's (sorted) targets into one batch."""
    results = [torch.zeros(len(s.sources), len(s.targets)) for s in seqs]
    chunks = [torch.argsort(s.targets).split(chunk) for s in seqs]
    for r in range(max(len(c) for c in chunks)):
        live = _live(chunks, r)
        batch = Padded.of([seqs[b].prefix(int(seqs[b].targets[p].max())) for b, p in live], padding)
        example, slots = _layout([p for _, p in live])
        positions = torch.cat([seqs[b].targets[p] for b, p in live])
        tokens = torch.cat([seqs[b].ids[seqs[b].targets[p]] for b, p in live])
        grads, scales = reverse_round(model, batch, example, positions - 1, tokens, slots, objective, batched)
        start = 0
        for i, (b, p) in enumerate(live):
            seq = seqs[b]
            rows = (seq.sources + batch.offsets[i]).to(grads.device)
            source_embeds = seq.embeds[seq.sources.to(seq.embeds.device)]
            block = gradient_times_input(grads[: len(p), i][:, rows], source_embeds, scales[start : start + len(p)])
            results[b][:, p] = block.float().cpu()
            start += len(p)
    return results


def _run_forward(model: Any, seqs: Sequence[_Sequence], chunk: int, objective: str, padding: str) -> list[torch.Tensor]:
    """Forward mode: round r pads every sequence up to its last target, tangents for its r-th chunk of sources."""
    results = [torch.zeros(len(s.sources), len(s.targets)) for s in seqs]
    chunks = [torch.arange(len(s.sources)).split(chunk) for s in seqs]
    head = model.get_output_embeddings()
    heads: list[torch.Tensor] = []  # ∂f_j/∂h per sequence (M, H), float32, from round 0's primal (all are live)
    for r in range(max(len(c) for c in chunks)):
        live = _live(chunks, r)
        batch = Padded.of([seqs[b].prefix(int(seqs[b].targets.max())) for b, _ in live], padding)
        example, slots = _layout([p for _, p in live])
        rows = torch.cat([seqs[b].sources[p] for b, p in live])
        hidden, tangents = forward_round(model, batch, example, rows, slots)
        for i, (b, p) in enumerate(live):
            seq = seqs[b]
            target_rows = (seq.targets - 1 + batch.offsets[i]).to(hidden.device)
            if r == 0:
                tokens = seq.ids[seq.targets].to(hidden.device)
                heads.append(head_gradients(hidden[i, target_rows], head.weight, head.bias, tokens, objective))
            block = (wide(tangents[: len(p), i, target_rows]) * heads[b]).sum(-1)  # (k, M): df_j along e_n
            if not bool(torch.isfinite(block).all()):
                # e.g. float16 on CPU: LayerNorm's forward-AD formula cubes the inverse std in float16 (> 65504
                # once the std is below 0.025), where the fused reverse kernels accumulate in float32
                raise AttributionError(f"forward mode overflowed in {hidden.dtype} (non-finite tangents)")
            results[b][p] = block.float().cpu()
    return results


def _footprint(model: Any, seqs: Sequence[_Sequence], padding: str) -> planning.Footprint:
    """The memory rule's sizes for the padded batch of every sequence up to its last target."""
    batch = Padded.of([s.prefix(int(s.targets.max())) for s in seqs], padding)
    config = model.config
    return planning.Footprint(
        weights=weight_bytes(model),
        activations=estimated_activation_bytes(model, batch),
        n_layers=int(getattr(config, "num_hidden_layers", 1)),
        n_heads=int(getattr(config, "num_attention_heads", 1)),
        batch=len(seqs),
        length=batch.embeds.shape[1],
        hidden=batch.embeds.shape[2],
    )


def _run(model: Any, seqs: Sequence[_Sequence], plan: Plan, objective: str, padding: str) -> list[torch.Tensor]:
    if plan.mode == "forward":
        return _run_forward(model, seqs, plan.chunk_size, objective, padding)
    return _run_reverse(model, seqs, plan.chunk_size, objective, plan.mode == "batched", padding)


def attribute_many(
    model: Any,
    sequences: Sequence[tuple[Any, Any, Any]],
    *,
    objective: str = "prob",
    mode: str = "auto",
    chunk_size: int | None = None,
    memory_budget: float = DEFAULT_MEMORY_BUDGET,
    padding: str = "right",
    report: Callable[[Plan], None] | None = None,
) -> list[torch.Tensor]:
    """`attribute` of several sequences ``(input_ids, source_positions, target_positions)`` in shared batches.

    Each round pads one chunk of every sequence into a batch (``padding`` "right" or "left", attention mask
    and explicit position ids), so a GPU runs B sequences per pass; the matrices equal one-by-one calls to
    1e-5 relative. The plan (`shiftlens.attribution.plan.choose`) is made for the whole batch, and the
    memory budget applies to it: ``memory_budget`` × (weights + one forward's activations of the batch).
    ``report``, if given, receives the plan that ran (after any fallback).
    """
    validate_options(objective, mode, chunk_size, memory_budget)
    if padding not in PADDING:
        raise AttributionInputError(f"unknown padding {padding!r}; choose one of {', '.join(PADDING)}")
    if not sequences:
        raise AttributionInputError("no sequences to attribute")
    embedding = model.get_input_embeddings()
    device = embedding.weight.device
    with frozen(model):
        seqs = []
        for ids, sources, targets in sequences:
            ids, sources, targets = validate(ids, sources, targets, objective, mode, chunk_size)
            with torch.no_grad():
                seqs.append(_Sequence(ids, sources, targets, embedding(ids.to(device))))
        n_parameters = sum(p.numel() for p in model.parameters())
        shape = planning.Shape(
            tuple(tuple(sorted(s.targets.tolist())) for s in seqs),
            tuple(len(s.sources) for s in seqs),
            planning.pass_overhead(n_parameters, int(getattr(model.config, "num_hidden_layers", 1))),
        )
        footprint = None if chunk_size is not None or mode == "loop" else _footprint(model, seqs, padding)
        threads = torch.get_num_threads()
        plan = planning.choose(mode, shape, footprint, memory_budget, threads, chunk_size)
        while True:
            try:
                results = _run(model, seqs, plan, objective, padding)
                break
            except (RuntimeError, NotImplementedError) as exc:
                if isinstance(exc, torch.cuda.OutOfMemoryError) or plan.mode not in FALLBACK:
                    raise
                fallback = FALLBACK[plan.mode]
                if mode != "auto":
                    raise AttributionError(
                        f"{plan.mode} attribution failed ({exc}); use mode='auto' or mode={fallback!r}"
                    ) from exc
                warnings.warn(f"{plan.mode} attribution failed ({exc}); falling back to {fallback}", stacklevel=2)
                plan = planning.choose(fallback, shape, footprint, memory_budget, threads, chunk_size)
    if report is not None:
        report(plan)
    return results


def attribute(
    model: Any,
    input_ids: torch.Tensor,
    source_positions: torch.Tensor,
    target_positions: torch.Tensor,
    *,
    objective: str = "prob",
    mode: str = "auto",
    chunk_size: int | None = None,
    memory_budget: float = DEFAULT_MEMORY_BUDGET,
    report: Callable[[Plan], None] | None = None,
) -> torch.Tensor:
    """Gradient × input attribution (N sources × M targets, float32 on CPU) of one sequence.

    ``input_ids`` (T,) holds prompt then response; target j is token ``input_ids[t_j]`` predicted from the
    logits at ``t_j − 1``; its objective is its probability ("prob", the paper's), log-probability or logit.
    ``mode``: "loop" (one backward per target), "batched" (one vmapped backward per chunk of targets),
    "forward" (one vmapped JVP per chunk of sources), or "auto": forward or batched by the cost model, chunks
    sized so the estimated peak stays within ``memory_budget`` × (weights + one forward's activations), with a
    fallback when a mode cannot run on the model. ``chunk_size`` overrides the chunk (targets, or sources in
    forward mode). ``report``, if given, receives the `Plan` that ran.
    """
    return attribute_many(
        model,
        [(input_ids, source_positions, target_positions)],
        objective=objective,
        mode=mode,
        chunk_size=chunk_size,
        memory_budget=memory_budget,
        report=report,
    )[0]
