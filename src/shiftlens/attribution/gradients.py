"""The numerical steps of gradient × input (see `shiftlens.attribution.core`): objectives and their head gradients,
hidden states of padded batches, one reverse round (seeds back-propagated) and one forward round (JVPs).

Precision-sensitive steps run in float32 at least (`wide`); reverse seeds are scaled by powers of two
(`seed_scales`) so that half-precision gradients neither underflow nor lose exactness.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F


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
