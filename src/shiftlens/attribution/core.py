"""Gradient × input attribution of response tokens to prompt tokens, exact and fast.

Entry (n, j) is ``e_n · ∇_{e_n} f_j``: the input embedding of source token n dotted with the gradient of
target j's objective (its probability by default, predicted from the logits one position earlier).
Instead of one full forward/backward per target through the whole vocabulary, this module

* computes the gradient of each objective w.r.t. the final hidden state in closed form (a cheap
  float32 autograd pass over the unembedding rows of the response positions only, `head_gradients`);
* splits the targets into chunks and runs one forward per chunk on the prefix that ends at the chunk's
  last target (causal attention makes the prefix's activations identical to the full sequence's);
* back-propagates each target's vector from the last hidden state to the embeddings, one backward per
  target with the graph retained ("loop") or one vmapped backward per chunk ("batched").

In bfloat16/float16 models the precision-sensitive steps run in float32: the objective's softmax and
head gradient, the gradient × input dot product over the hidden dimension, the returned matrix. Each
target's seed vector is scaled by a power of two to a maximum of about 1 before it enters the model's
dtype and the scale is put back in float32 (per-target loss scaling): without it, the gradient of a
token of probability 1e-9 underflows to zero in float16. Powers of two keep float32 results bit-exact.

Parameters never get gradients: they are frozen for the call and restored afterwards.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import torch
import torch.nn.functional as F

from shiftlens.errors import ShiftlensError

OBJECTIVES = ("prob", "logprob", "logit")
MODES = ("auto", "loop", "batched")
DEFAULT_CHUNK = 16  # ~sqrt(2 × prefix length): balances one forward per chunk against truncation waste


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


def final_hidden(model: Any, embeds: torch.Tensor) -> torch.Tensor:
    """Final (post-norm) hidden states (L, H) of the base model for one sequence of embeddings (L, H)."""
    out = model.base_model(inputs_embeds=embeds[None], use_cache=False)
    return out.last_hidden_state[0]


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


def validate(
    input_ids: Any,
    source_positions: Any,
    target_positions: Any,
    objective: str,
    mode: str,
    chunk_size: int | None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Check and normalise the arguments of `attribute`; raise `AttributionInputError` naming the problem."""
    if objective not in OBJECTIVES:
        raise AttributionInputError(f"unknown objective {objective!r}; choose one of {', '.join(OBJECTIVES)}")
    if mode not in MODES:
        raise AttributionInputError(f"unknown mode {mode!r}; choose one of {', '.join(MODES)}")
    if chunk_size is not None and chunk_size < 1:
        raise AttributionInputError(f"chunk_size must be at least 1, got {chunk_size}")
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


def scaled_chunk_gradients(
    model: Any, embeds: torch.Tensor, rows: torch.Tensor, tokens: torch.Tensor, objective: str, batched: bool
) -> tuple[torch.Tensor, torch.Tensor]:
    """Gradients (k, L, H) in the model's dtype, each divided by its float32 scale (k,), and those scales.

    Target i is token ``tokens[i]`` predicted from the final hidden state at ``rows[i]`` (< L). One forward
    on the prefix ``embeds`` (L, H), then one backward per target (graph retained) or one vmapped backward
    when ``batched``, each seeded with the target's head gradient over its `seed_scales`.
    """
    with torch.enable_grad():
        leaf = embeds.detach().requires_grad_(True)
        hidden = final_hidden(model, leaf)  # on the last layer's device, the embeddings on the first's
        picked = hidden[rows.to(hidden.device)]
        head = model.get_output_embeddings()
        vectors = head_gradients(picked, head.weight, head.bias, tokens.to(picked.device), objective)
        scales = seed_scales(vectors)
        vectors = (vectors / scales[:, None]).to(picked.dtype)
        scales = scales.to(leaf.device)  # the gradients land on the embeddings' device
        if batched:
            seeds = torch.eye(len(rows), dtype=picked.dtype, device=picked.device)[:, :, None] * vectors[None]
            return torch.autograd.grad(picked, leaf, seeds, is_grads_batched=True)[0], scales
        last = len(rows) - 1
        grads = [torch.autograd.grad(picked[i], leaf, vectors[i], retain_graph=i < last)[0] for i in range(len(rows))]
        return torch.stack(grads), scales


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


def default_mode(device: torch.device) -> str:
    """The mode "auto" runs: batched on CUDA; on CPU the loop, as fast there and within the memory budget.

    On SmolLM2 (2 CPU threads, 212 tokens) both take ~30–35 s, but a vmapped chunk of 16 peaks at 1.4×
    (weights + one forward's activations) against 1.1× for the loop (docs/benchmarks.md).
    """
    return "batched" if device.type == "cuda" else "loop"


def attribute(
    model: Any,
    input_ids: torch.Tensor,
    source_positions: torch.Tensor,
    target_positions: torch.Tensor,
    *,
    objective: str = "prob",
    mode: str = "auto",
    chunk_size: int | None = None,
) -> torch.Tensor:
    """Gradient × input attribution (N sources × M targets, float32 on CPU) of one sequence.

    ``input_ids`` (T,) holds prompt then response; target j is token ``input_ids[t_j]`` predicted from the
    logits at ``t_j − 1``; its objective is its probability ("prob", the paper's), log-probability or logit.
    ``mode`` "loop" runs one backward per target, "batched" one vmapped backward per chunk of targets;
    "auto" picks by device (`default_mode`) and falls back to the loop when batching fails for a model
    (an op without a vmap rule).
    """
    ids, sources, targets = validate(input_ids, source_positions, target_positions, objective, mode, chunk_size)
    embedding = model.get_input_embeddings()
    device = embedding.weight.device
    batched = (default_mode(device) if mode == "auto" else mode) == "batched"
    source_index = sources.to(device)
    result = torch.zeros(len(sources), len(targets), dtype=torch.float32)
    with frozen(model):
        with torch.no_grad():
            embeds = embedding(ids.to(device))
        source_embeds = embeds[source_index]
        for chunk in torch.argsort(targets).split(chunk_size or DEFAULT_CHUNK):
            positions = targets[chunk]
            args = (model, embeds[: int(positions.max())], positions - 1, ids[positions], objective)
            try:
                grads, scales = scaled_chunk_gradients(*args, batched=batched)
            except (RuntimeError, NotImplementedError) as exc:
                if not batched:
                    raise
                if mode == "batched":
                    raise AttributionError(f"batched attribution failed ({exc}); use mode='loop' or 'auto'") from exc
                warnings.warn(
                    f"batched attribution failed ({exc}); falling back to one backward per target",
                    stacklevel=2,
                )
                batched = False
                grads, scales = scaled_chunk_gradients(*args, batched=False)
            result[:, chunk] = gradient_times_input(grads[:, source_index], source_embeds, scales).float().cpu()
    return result
