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
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F

from shiftlens.attribution import plan as planning
from shiftlens.attribution.plan import DEFAULT_CHUNK, DEFAULT_MEMORY_BUDGET, MODES, Plan
from shiftlens.errors import ShiftlensError

__all__ = ["DEFAULT_CHUNK", "DEFAULT_MEMORY_BUDGET", "MODES", "Plan", "attribute", "attribute_many"]

OBJECTIVES = ("prob", "logprob", "logit")
PADDING = ("right", "left")
FALLBACK = {"forward": "batched", "batched": "loop"}  # what "auto" runs when a mode fails on a model


class AttributionInputError(ShiftlensError, ValueError):
    """Positions or options passed to `attribute` are inconsistent; the message names the culprit."""


class AttributionError(ShiftlensError, RuntimeError):
    """The requested attribution mode cannot run on this model."""


def wide(tensor: torch.Tensor) -> torch.Tensor:
    """The tensor in float32, or float64 if it already is: objectives and products never run in bf16/fp16."""
    return tensor.to(torch.promote_types(tensor.dtype, torch.float32))


def objective_values(logits: torch.Tensor, tokens: torch.Tensor, objective: str) -> torch.Tensor:
    """f_j for each row of float32 ``logits`` (M, V) and its token (M,): prob, logprob or raw logit."""
    if objective == "logit":
        return logits.gather(-1, tokens[:, None])[:, 0]
    logprob = torch.log_softmax(logits, dim=-1).gather(-1, tokens[:, None])[:, 0]
    return logprob.exp() if objective == "prob" else logprob


def head_gradients(
    hidden: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None,
    tokens: torch.Tensor,
    objective: str,
) -> torch.Tensor:
    """∂f_j/∂h_j (M, H), float32 at least, for final hidden states ``hidden`` (M, H) and an affine unembed.

    For "prob" this is p_y (W_y − Σ_v p_v W_v); the rows are independent, so one backward of the sum
    gives every row's gradient.
    """
    with torch.enable_grad():
        h = wide(hidden.detach()).requires_grad_(True)
        # .to(h.device): under a device map the (possibly tied) head can sit on another GPU than the last layer
        weight = weight.detach().to(h.device, h.dtype)
        bias = None if bias is None else bias.detach().to(h.device, h.dtype)
        logits = F.linear(h, weight, bias)
        (grad,) = torch.autograd.grad(objective_values(logits, tokens, objective).sum(), h)
    return grad


@contextmanager
def frozen(model: Any) -> Iterator[None]:
    """Eval mode and no parameter gradients for the duration; the previous state is restored after."""
    trainable = [p for p in model.parameters() if p.requires_grad]
    was_training = model.training
    model.eval()
    for p in trainable:
        p.requires_grad_(False)
    try:
        yield
    finally:
        for p in trainable:
            p.requires_grad_(True)
        model.train(was_training)


def hidden_states(
    model: Any, embeds: torch.Tensor, mask: torch.Tensor | None = None, positions: torch.Tensor | None = None
) -> torch.Tensor:
    """Final (post-norm) hidden states (B, L, H) of the base model for a batch of embeddings (B, L, H)."""
    out = model.base_model(inputs_embeds=embeds, attention_mask=mask, position_ids=positions, use_cache=False)
    return out.last_hidden_state


def final_hidden(model: Any, embeds: torch.Tensor) -> torch.Tensor:
    """Final (post-norm) hidden states (L, H) of the base model for one sequence of embeddings (L, H)."""
    return hidden_states(model, embeds[None])[0]


def _positions(name: str, value: Any, length: int) -> torch.Tensor:
    tensor = torch.as_tensor(value)
    if tensor.ndim != 1 or tensor.dtype.is_floating_point or tensor.dtype == torch.bool:
        raise AttributionInputError(
            f"{name} must be a 1-D integer tensor, got shape {tuple(tensor.shape)} {tensor.dtype}"
        )
    if tensor.numel() == 0:
        raise AttributionInputError(f"{name} is empty: nothing to attribute")
    bad = tensor[(tensor < 0) | (tensor >= length)]
    if bad.numel():
        raise AttributionInputError(f"{name} contains position {int(bad[0])} outside the sequence of length {length}")
    return tensor.long().cpu()


def validate_options(objective: str, mode: str, chunk_size: int | None, memory_budget: float = 1.0) -> None:
    """Check the options of `attribute`; raise `AttributionInputError` naming the bad one."""
    if objective not in OBJECTIVES:
        raise AttributionInputError(f"unknown objective {objective!r}; choose one of {', '.join(OBJECTIVES)}")
    if mode not in MODES:
        raise AttributionInputError(f"unknown mode {mode!r}; choose one of {', '.join(MODES)}")
    if chunk_size is not None and chunk_size < 1:
        raise AttributionInputError(f"chunk_size must be at least 1, got {chunk_size}")
    if not memory_budget > 0:
        raise AttributionInputError(f"memory_budget must be positive, got {memory_budget}")


def validate(
    input_ids: Any,
    source_positions: Any,
    target_positions: Any,
    objective: str,
    mode: str,
    chunk_size: int | None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Check and normalise the arguments of `attribute`; raise `AttributionInputError` naming the problem."""
    validate_options(objective, mode, chunk_size)
    ids = torch.as_tensor(input_ids)
    if ids.ndim != 1 or ids.dtype.is_floating_point:
        raise AttributionInputError(f"input_ids must be one 1-D integer sequence, got shape {tuple(ids.shape)}")
    sources = _positions("source_positions", source_positions, len(ids))
    targets = _positions("target_positions", target_positions, len(ids))
    if int(targets.min()) < 1:
        raise AttributionInputError("target position 0 has no preceding logits to predict it from")
    if int(sources.max()) >= int(targets.min()):
        raise AttributionInputError(
            f"source position {int(sources.max())} is not before the first target position "
            f"{int(targets.min())}: sources (prompt tokens) must precede every target (response token)"
        )
    return ids.long(), sources, targets


def seed_scales(vectors: torch.Tensor) -> torch.Tensor:
    """Per row of ``vectors`` (k, H), the power of two 2^e with max |row| / 2^e in [0.5, 1) (1 for a zero row).

    Dividing by it is exact, and it brings a seed of any magnitude into the range of float16/bfloat16.
    """
    exponent = torch.frexp(vectors.abs().amax(-1)).exponent
    return torch.ldexp(torch.ones(len(vectors), dtype=vectors.dtype, device=vectors.device), exponent)


@dataclass(frozen=True)
class Padded:
    """Sequences of embeddings padded into one batch: ``embeds`` (B, L, H), ``offsets`` (B,) = left padding.

    ``mask`` (B, L) is None when nothing is padded; ``positions`` (B, L) are explicit position ids, counting
    from 0 at each sequence's first real token (pad positions get 0).
    """

    embeds: torch.Tensor
    mask: torch.Tensor | None
    positions: torch.Tensor
    offsets: torch.Tensor

    @classmethod
    def of(cls, sequences: Sequence[torch.Tensor], padding: str = "right") -> Padded:
        """Pad ``sequences`` (each (L_b, H), on one device) to the longest, zeros on the ``padding`` side."""
        first = sequences[0]
        lengths = torch.tensor([len(s) for s in sequences])
        length = int(lengths.max())
        offsets = length - lengths if padding == "left" else torch.zeros_like(lengths)
        embeds = first.new_zeros(len(sequences), length, first.shape[-1])
        mask = torch.zeros(len(sequences), length, dtype=torch.long)
        for b, (seq, off) in enumerate(zip(sequences, offsets.tolist())):
            embeds[b, off : off + len(seq)] = seq
            mask[b, off : off + len(seq)] = 1
        positions = (torch.arange(length)[None] - offsets[:, None]).clamp(min=0)
        device = first.device
        return cls(embeds, None if bool(mask.all()) else mask.to(device), positions.to(device), offsets)

    def hidden(self, model: Any, embeds: torch.Tensor | None = None) -> torch.Tensor:
        """Final hidden states (B, L, H) of this batch, or of other embeddings laid out like it."""
        return hidden_states(model, self.embeds if embeds is None else embeds, self.mask, self.positions)


def reverse_round(
    model: Any,
    batch: Padded,
    example: torch.Tensor,
    rows: torch.Tensor,
    tokens: torch.Tensor,
    slots: torch.Tensor,
    objective: str,
    batched: bool,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Gradients (k, B, L, H) in the model's dtype, seed ``i`` in row i, each divided by its float32 scale.

    Target p is token ``tokens[p]`` predicted from the final hidden state of sequence ``example[p]`` at
    (unpadded) row ``rows[p]``; its seed is back-propagated in slot ``slots[p]`` (< k), and a slot holds at
    most one target per sequence. One forward, then one vmapped backward of the k slots when ``batched``,
    else one backward per slot (graph retained). Returns the gradients and the scales (P,) of `seed_scales`.
    """
    with torch.enable_grad():
        leaf = batch.embeds.detach().requires_grad_(True)
        hidden = batch.hidden(model, leaf)  # on the last layer's device, the embeddings on the first's
        index = (example.to(hidden.device), (rows + batch.offsets[example]).to(hidden.device))
        picked = hidden[index]
        head = model.get_output_embeddings()
        vectors = head_gradients(picked, head.weight, head.bias, tokens.to(picked.device), objective)
        scales = seed_scales(vectors)
        seeds = torch.zeros(int(slots.max()) + 1, *picked.shape, dtype=picked.dtype, device=picked.device)
        seeds[slots.to(picked.device), torch.arange(len(picked), device=picked.device)] = (
            vectors / scales[:, None]
        ).to(picked.dtype)
        scales = scales.to(leaf.device)  # the gradients land on the embeddings' device
        if batched:
            return torch.autograd.grad(picked, leaf, seeds, is_grads_batched=True)[0], scales
        last = len(seeds) - 1
        grads = [torch.autograd.grad(picked, leaf, seed, retain_graph=i < last)[0] for i, seed in enumerate(seeds)]
        return torch.stack(grads), scales


def scaled_chunk_gradients(
    model: Any, embeds: torch.Tensor, rows: torch.Tensor, tokens: torch.Tensor, objective: str, batched: bool
) -> tuple[torch.Tensor, torch.Tensor]:
    """`reverse_round` for one sequence ``embeds`` (L, H) and k targets in k slots: gradients (k, L, H), scales."""
    zeros = torch.zeros(len(rows), dtype=torch.long)
    grads, scales = reverse_round(
        model, Padded.of([embeds]), zeros, rows, tokens, torch.arange(len(rows)), objective, batched
    )
    return grads[:, 0], scales


def chunk_gradients(
    model: Any, embeds: torch.Tensor, rows: torch.Tensor, tokens: torch.Tensor, objective: str, batched: bool
) -> torch.Tensor:
    """Gradients (k, L, H), float32 at least, of each target's objective w.r.t. the embeddings of a prefix.

    The unscaled form of `scaled_chunk_gradients` (same arguments), for callers that want the gradients.
    """
    grads, scales = scaled_chunk_gradients(model, embeds, rows, tokens, objective, batched)
    return wide(grads) * scales[:, None, None]


def gradient_times_input(grads: torch.Tensor, embeds: torch.Tensor, scales: torch.Tensor) -> torch.Tensor:
    """(N, k) matrix of ``scales[j] · grads[j, n] · embeds[n]``, products and the sum over H in float32 at least.

    ``grads`` (k, N, H) and ``embeds`` (N, H) may be bfloat16/float16: a half-precision sum over thousands
    of hidden dimensions would keep only 3–4 significant digits.
    """
    return ((wide(grads) * wide(embeds)).sum(-1) * scales[:, None]).t()


@contextmanager
def forward_ad_attention() -> Iterator[None]:
    """SDPA's math kernel for the duration: the fused CPU/CUDA kernels (flash, memory-efficient) have no
    forward-AD formula (torch 2.13: "Trying to use forward AD with _scaled_dot_product_flash_attention_for_cpu"),
    while the math kernel is built from differentiable ops. Same result as eager attention, without switching
    the model's attention implementation; eager models are unaffected."""
    try:
        from torch.nn.attention import SDPBackend, sdpa_kernel
    except ImportError as exc:  # torch < 2.3
        raise NotImplementedError("forward mode needs torch >= 2.3 (torch.nn.attention.sdpa_kernel)") from exc
    with sdpa_kernel(SDPBackend.MATH):
        yield


def forward_round(
    model: Any, batch: Padded, example: torch.Tensor, rows: torch.Tensor, slots: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """The final hidden states (B, L, H) and their tangents (k, B, L, H) along k directions.

    Direction i holds, for each source q with ``slots[q] == i``, the embedding of sequence ``example[q]`` at
    (unpadded) row ``rows[q]`` in that place, zero elsewhere: one primal forward, k vmapped JVPs.
    """
    x = batch.embeds
    tangents = x.new_zeros(int(slots.max()) + 1, *x.shape)
    padded_rows = rows + batch.offsets[example]
    tangents[slots, example, padded_rows] = x[example, padded_rows]

    def jvp(tangent: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return torch.func.jvp(lambda e: batch.hidden(model, e), (x,), (tangent,))

    with torch.no_grad(), forward_ad_attention():
        return torch.func.vmap(jvp, out_dims=(None, 0))(tangents)


def weight_bytes(model: Any) -> int:
    """Bytes of the model's parameters (tied ones once)."""
    return sum(p.numel() * p.element_size() for p in model.parameters())


def activation_bytes(model: Any, batch: Padded) -> int:
    """Bytes autograd saves in one gradient-enabled forward of ``batch`` (parameters and buffers not counted).

    Counted with saved-tensor hooks, each storage once, whatever the architecture or attention implementation:
    one gradient-enabled forward, holding the activations until it returns.
    """
    seen = {t.untyped_storage().data_ptr() for t in (*model.parameters(), *model.buffers())}
    total = 0

    def pack(tensor: torch.Tensor) -> torch.Tensor:
        nonlocal total
        storage = tensor.untyped_storage()
        if storage.data_ptr() not in seen:
            seen.add(storage.data_ptr())
            total += storage.nbytes()
        return tensor

    with torch.enable_grad(), torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        batch.hidden(model, batch.embeds.detach().requires_grad_(True))
    return total


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


PROBE_LENGTHS = (16, 32, 48)  # the activations of longer batches are extrapolated from these


def estimated_activation_bytes(model: Any, batch: Padded) -> int:
    """`activation_bytes` of ``batch``, counted on its first 16, 32 and 48 positions and extrapolated.

    The saved bytes of a causal LM forward are a quadratic in the length (per-token tensors, and per-layer
    T × T attention weights and masks for eager attention), so three counts fix them; probing short prefixes
    keeps the probe's memory (which the allocator may keep after it is freed) and time small.
    """
    length = batch.embeds.shape[1]
    if length <= PROBE_LENGTHS[-1]:
        return activation_bytes(model, batch)
    counts = []
    for n in PROBE_LENGTHS:
        mask = None
        if batch.mask is not None:  # keep a padded position: transformers drops all-ones masks (no mask tensors)
            mask = batch.mask[:, :n].clone()
            mask[0, -1] = 0 if bool(mask.all()) else mask[0, -1]
        counts.append(activation_bytes(model, Padded(batch.embeds[:, :n], mask, batch.positions[:, :n], batch.offsets)))
    total = 0.0  # the Lagrange form of the quadratic through the three counts, at `length`
    for i, (x_i, y_i) in enumerate(zip(PROBE_LENGTHS, counts)):
        weight = 1.0
        for j, x_j in enumerate(PROBE_LENGTHS):
            if j != i:
                weight *= (length - x_j) / (x_i - x_j)
        total += weight * y_i
    return max(round(total), counts[-1])


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
        shape = planning.Shape(
            tuple(tuple(sorted(s.targets.tolist())) for s in seqs), tuple(len(s.sources) for s in seqs)
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
