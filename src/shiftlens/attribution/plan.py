"""How `shiftlens.attribution.core` computes a matrix: reverse or forward mode and the chunk size, chosen from a
cost model of the token counts and a memory budget. Pure arithmetic on counts and byte sizes, no tensors.

**Cost**, in forwards of one token. Reverse mode runs, per chunk of k targets, one forward of the prefix that
ends at the chunk's last target (length L) and k vmapped backwards of it: L · (1 + REVERSE_COST · k). Forward
mode runs, per chunk of k sources, one primal forward and k vmapped JVPs of the sequence up to its last
target: L · (1 + FORWARD_COST · k). So reverse costs about M · (N + M/2) and forward N · (N + M) for N
prompt and M response tokens: forward wins when the prompt is much shorter than the response. Examples
attributed together are padded into one batch per round, which costs B · L_max of the round. Every round
(one pass) also pays a fixed cost, `Shape.overhead` forwards of one token (`pass_overhead`): the dispatch of
each layer's kernels, which dominates on small models (the organism) and is a few % on SmolLM2.

**Memory**, in the budget's unit U = weights W + activations A (the bytes autograd saves in one
gradient-enabled forward of the longest prefix, counted on three short prefixes and extrapolated exactly,
`core.estimated_activation_bytes`), so the budget is
``memory_budget · max(U, MIN_UNIT)``: a unit below `MIN_UNIT` (256 MiB, a small model) counts as
`MIN_UNIT`, since there the ratio would measure allocator noise rather than a risk of running out.
Estimated peaks, calibrated on SmolLM2 (float32, CPU, 212 tokens, docs/benchmarks.md):

* every mode: + 0.12 (W + A) of slack (the objective's vocabulary-sized tensors, allocator residue: what the
  terms below missed when measured at the full size);
* batched: W + 1.5 A + k · 2A/L_layers (the graph, the loop's working memory, then per target the
  gradients of one layer's activations held by the vmapped backward);
* loop: W + 1.5 A + k · (one target's stacked embedding gradient); its chunk is `DEFAULT_CHUNK`;
* forward: W + 0.5 A + k · (2A/L_layers + the attention scores, probabilities and their tangents of one
  layer, 3 · B · heads · L² floats: the forward pass runs SDPA's math kernel, see `core`).

Without the slack these terms overestimated the peak RSS growth of small probes by 0–25 % at k ≥ 8
(batched at 212 tokens, k = 1/8/16/24:
239/332/364/528 MiB measured, 278/364/462/561 estimated; forward at 212 and 331 tokens, k = 8/16/32 and
8/16/30: 174/302/470 and 368/501/762 measured, 224/359/629 and 381/625/1050 estimated), but at the full
benchmark size they fell short of the whole peak by 0.10–0.12 of the unit (batched k = 17: 1.43 estimated,
1.53 measured), which the slack covers.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

MODES = ("auto", "loop", "batched", "forward")
OBJECTIVES = ("prob", "logprob", "logit")  # what `core` differentiates: the response token's prob, ...
REVERSE_COST = 1.25  # one target's vmapped backward, in forwards of the same prefix (SmolLM2: 0.90 s vs 0.73 s)
FORWARD_COST = 1.5  # one source's vmapped JVP, in forwards of the same sequence (SmolLM2: 1.10 s vs 0.73 s)
DEFAULT_MEMORY_BUDGET = 1.5  # peak ≤ 1.5 × (weights + one forward's activations)
DEFAULT_CHUNK = 16  # the loop's chunk: ~sqrt(2 × prefix length) balances forwards against truncation waste
MAX_CHUNK = 64  # beyond this a chunk saves < 2 % of forwards and only costs memory
# Forward mode gets slower per source beyond ~16 on CPU: at 331 tokens 1.6–1.7 s per source at k = 8–16,
# 2.4 s at k = 30 (vmapped tensors of k × 331 × 1536 floats, k × heads × 331² scores, leave the caches).
MAX_FORWARD_CHUNK = 16
FORWARD_BASE = 0.5  # forward mode, × A: the primal's layer in flight, the output tangents, allocator slack
GRAPH_FACTOR = 1.5  # reverse modes: the retained graph plus the first target's working memory, × A
LAYER_WORK = 2.0  # per vmapped target or tangent: this many layers' worth of activations (A / L_layers)
ATTENTION_TENSORS = 3  # forward mode: scores, probabilities and a tangent, float32, per head, per tangent
# Every mode, × (W + A): what the terms above miss — the objective's vocabulary-sized tensors and allocator
# residue; measured on SmolLM2 (bench/attribution.py, docs/benchmarks.md): 0.10 (batched, 212 and 331 tokens)
# and 0.12 (forward, 212 tokens) of the unit above the estimate.
SLACK = 0.12
MIN_UNIT = 256 * 2**20  # bytes: a smaller unit (weights + activations) is budgeted as this much
# The fixed cost of one pass, per layer, in floating point operations of a forward of one token (2 per
# parameter): fitted on the organism (4 layers, 3.4 M parameters, CPU, batched mode, chunks 1–30 of 60
# targets): 0.018 s per pass against 6.2e-5 s per token forward, i.e. 290 token forwards per pass
# (docs/benchmarks.md). Per layer that is 290 · 2 · 3.4e6 / 4 ≈ 4.9e8; SmolLM2 (30 layers, 135 M): 55 per pass.
PASS_FLOPS_PER_LAYER = 4.9e8


def pass_overhead(n_parameters: int, n_layers: int) -> float:
    """The fixed cost of one pass in forwards of one token: each layer's dispatch, over 2 flops per parameter."""
    return n_layers * PASS_FLOPS_PER_LAYER / (2 * max(n_parameters, 1))


@dataclass(frozen=True)
class Shape:
    """What to attribute, as counts: per example its sorted target positions and its number of sources, and
    the fixed cost of one pass (in forwards of one token, `pass_overhead`)."""

    targets: tuple[tuple[int, ...], ...]
    sources: tuple[int, ...]
    overhead: float = 0.0

    @property
    def length(self) -> int:
        """The longest prefix any pass runs on: up to the last target of the longest example."""
        return max(t[-1] for t in self.targets)


def reverse_cost(shape: Shape, chunk: int) -> float:
    """Reverse mode, ``chunk`` targets per chunk: Σ over rounds B · L_max · (1 + REVERSE_COST · k) + overhead."""
    rounds = max(math.ceil(len(t) / chunk) for t in shape.targets)
    total = rounds * shape.overhead
    for r in range(rounds):
        parts = [t[r * chunk : (r + 1) * chunk] for t in shape.targets if len(t) > r * chunk]
        total += len(parts) * max(p[-1] for p in parts) * (1 + REVERSE_COST * max(len(p) for p in parts))
    return total


def forward_cost(shape: Shape, chunk: int) -> float:
    """Forward mode, ``chunk`` sources per chunk: Σ over rounds B · L_max · (1 + FORWARD_COST · k) + overhead."""
    rounds = max(math.ceil(n / chunk) for n in shape.sources)
    total = rounds * shape.overhead
    for r in range(rounds):
        live = [(n, t[-1]) for n, t in zip(shape.sources, shape.targets) if n > r * chunk]
        k = max(min(chunk, n - r * chunk) for n, _ in live)
        total += len(live) * max(length for _, length in live) * (1 + FORWARD_COST * k)
    return total


COSTS = {"batched": reverse_cost, "loop": reverse_cost, "forward": forward_cost}


@dataclass(frozen=True)
class Footprint:
    """The sizes the memory rule needs, in bytes and counts, for the padded batch of the longest round."""

    weights: int
    activations: int
    n_layers: int
    n_heads: int
    batch: int
    length: int
    hidden: int

    @property
    def unit(self) -> int:
        """Weights + one forward's activations: what `memory_ratio` divides by."""
        return self.weights + self.activations

    @property
    def budget_unit(self) -> int:
        """What the budget multiplies: the unit, or `MIN_UNIT` for a small model."""
        return max(self.unit, MIN_UNIT)


def _layer(fp: Footprint) -> float:
    return LAYER_WORK * fp.activations / max(fp.n_layers, 1)


def base_bytes(mode: str, fp: Footprint) -> float:
    """Estimated peak before any per-chunk item: weights plus what a chunk of one needs beyond it."""
    slack = SLACK * fp.unit
    if mode == "forward":
        return fp.weights + FORWARD_BASE * fp.activations + slack
    return fp.weights + GRAPH_FACTOR * fp.activations + slack


def item_bytes(mode: str, fp: Footprint) -> float:
    """Estimated extra peak per target (reverse) or source (forward) in a chunk."""
    gradient = 4 * fp.batch * fp.length * fp.hidden  # one (B, L, H) float32 gradient or tangent per item
    if mode == "loop":
        return gradient
    if mode == "batched":
        return _layer(fp) + gradient
    return _layer(fp) + ATTENTION_TENSORS * 4 * fp.batch * fp.n_heads * fp.length**2 + gradient


def memory_ratio(mode: str, fp: Footprint, chunk: int) -> float:
    """Estimated peak / (weights + one forward's activations) with ``chunk`` items per chunk."""
    return (base_bytes(mode, fp) + chunk * item_bytes(mode, fp)) / fp.unit


def budget_chunk(mode: str, fp: Footprint, budget: float, limit: int) -> int:
    """The largest chunk in [1, limit] whose estimated peak fits ``budget`` × the budget's unit; 1 if none."""
    room = budget * fp.budget_unit - base_bytes(mode, fp)
    return max(1, min(limit, math.floor(room / item_bytes(mode, fp))))


@dataclass(frozen=True)
class Plan:
    """The mode and chunk a call ran with (after any fallback), the thread count and the estimates behind them.

    Speed-only: every plan gives the same matrix to 1e-5 relative, so runs record it but never key on it.
    """

    mode: str
    chunk_size: int
    threads: int
    memory_budget: float
    memory_ratio: float | None = None
    costs: dict[str, float] | None = None

    def to_json(self) -> dict[str, Any]:
        """A JSON-safe dict of the plan."""
        return asdict(self)


def chunk_for(mode: str, shape: Shape, fp: Footprint | None, budget: float) -> int:
    """The chunk a mode runs with when none is given: within the memory budget, the cheapest by the cost model.

    Loop: `DEFAULT_CHUNK`. Batched: the cheapest chunk that fits. Forward: the largest that fits, at most
    `MAX_FORWARD_CHUNK`, then evened out over the chunks of the example with the most sources.
    """
    if mode == "loop":
        return DEFAULT_CHUNK
    items = max(len(t) for t in shape.targets) if mode == "batched" else max(shape.sources)
    limit = min(items, MAX_CHUNK if mode == "batched" else MAX_FORWARD_CHUNK)
    if fp is not None:
        limit = budget_chunk(mode, fp, budget, limit)
    if mode == "forward":
        return math.ceil(items / math.ceil(items / limit))
    return min(range(1, limit + 1), key=lambda k: (reverse_cost(shape, k), k))


def choose(
    mode: str, shape: Shape, fp: Footprint | None, budget: float, threads: int, chunk_size: int | None = None
) -> Plan:
    """The plan for ``mode`` ("auto": forward or batched, whichever the cost model finds cheaper; ties reverse)."""
    candidates = ("batched", "forward") if mode == "auto" else (mode,)
    chunks = {m: chunk_size or chunk_for(m, shape, fp, budget) for m in candidates}
    costs = {m: round(COSTS[m](shape, chunks[m]), 1) for m in candidates}
    chosen = min(candidates, key=lambda m: costs[m])
    ratio = None if fp is None else round(memory_ratio(chosen, fp, chunks[chosen]), 3)
    return Plan(chosen, chunks[chosen], threads, budget, ratio, costs)
