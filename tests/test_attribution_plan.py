"""The attribution planner: the cost model (forward mode when the prompt is much shorter than the response,
reverse when it is longer), chunk sizes under the memory budget, and what `attribute` reports it ran."""

from __future__ import annotations

import pytest
import torch
from conftest import FAMILIES, tiny_config, tiny_model

from shiftlens.attribution import plan
from shiftlens.attribution.core import PADDING, attribute
from shiftlens.attribution.gradients import Padded
from shiftlens.attribution.memory import activation_bytes, estimated_activation_bytes
from shiftlens.attribution.plan import FORWARD_COST, REVERSE_COST, Footprint, Shape, choose

MIB = 2**20
# SmolLM2-135M, float32, 212 tokens (docs/benchmarks.md): 513 MiB of weights, 178 MiB saved by one forward.
SMOLLM2 = Footprint(513 * MIB, 178 * MIB, n_layers=30, n_heads=9, batch=1, length=211, hidden=576)


def _shape(n: int, m: int) -> Shape:
    return Shape((tuple(range(n, n + m)),), (n,))


def test_costs_by_hand() -> None:
    shape = Shape(((5, 6, 7),), (3,))
    # reverse, chunks of 2: targets {5, 6} on a prefix of 6, {7} on 7
    assert plan.reverse_cost(shape, 2) == pytest.approx(6 * (1 + 2 * REVERSE_COST) + 7 * (1 + REVERSE_COST))
    # forward, chunks of 2: sources {0, 1} then {2}, both on the sequence up to the last target (7)
    assert plan.forward_cost(shape, 2) == pytest.approx(7 * (1 + 2 * FORWARD_COST) + 7 * (1 + FORWARD_COST))


def test_costs_of_a_padded_batch_count_every_row_at_the_longest_length() -> None:
    shape = Shape(((3, 4, 5, 6), (2, 9)), (3, 2))
    # round 0: both (prefixes 4 and 9, padded to 9), 2 seeds; round 1: the first only (prefix 6), 2 seeds
    assert plan.reverse_cost(shape, 2) == pytest.approx(2 * 9 * (1 + 2 * REVERSE_COST) + 6 * (1 + 2 * REVERSE_COST))
    # round 0: both padded to 9 with 2 tangents; round 1: the first (length 6), its last source
    assert plan.forward_cost(shape, 2) == pytest.approx(2 * 9 * (1 + 2 * FORWARD_COST) + 6 * (1 + FORWARD_COST))


@pytest.mark.parametrize("footprint", [None, SMOLLM2])
def test_auto_picks_forward_for_short_prompts_and_reverse_for_long_ones(footprint: Footprint | None) -> None:
    assert choose("auto", _shape(30, 300), footprint, 1.5, 2).mode == "forward"
    assert choose("auto", _shape(8, 120), footprint, 1.5, 2).mode == "forward"
    assert choose("auto", _shape(300, 30), footprint, 1.5, 2).mode == "batched"
    assert choose("auto", _shape(112, 100), footprint, 1.5, 2).mode == "batched"  # the benchmark's example
    short = choose("auto", _shape(30, 300), footprint, 1.5, 2)
    assert short.costs["forward"] * 2 < short.costs["batched"]  # the model's margin for the 30 + 300 case


def test_explicit_modes_and_chunks_are_kept() -> None:
    assert choose("forward", _shape(300, 30), None, 1.5, 2).mode == "forward"
    assert choose("loop", _shape(30, 300), None, 1.5, 2).chunk_size == plan.DEFAULT_CHUNK
    given = choose("batched", _shape(30, 300), SMOLLM2, 1.5, 3, chunk_size=7)
    assert (given.mode, given.chunk_size, given.threads) == ("batched", 7, 3)


def test_chunks_fit_the_memory_budget() -> None:
    """The chunk is the largest (forward) or cheapest (batched) whose estimated peak fits the budget."""
    for mode in ("batched", "forward"):
        for budget in (1.3, 1.5, 2.0, 3.0):
            k = plan.budget_chunk(mode, SMOLLM2, budget, limit=10_000)
            assert plan.memory_ratio(mode, SMOLLM2, k) <= budget < plan.memory_ratio(mode, SMOLLM2, k + 1)
        assert plan.budget_chunk(mode, SMOLLM2, 0.5, limit=64) == 1  # nothing fits: one at a time
        assert plan.budget_chunk(mode, SMOLLM2, 100.0, limit=64) == 64  # capped
    # the rule's arithmetic for batched at 1.5: ((1.5 − slack) (W + A) − W − 1.5 A) / (2 A / 30 + one gradient)
    gradient = 4 * 211 * 576
    room = (1.5 - plan.SLACK) * (513 + 178) * MIB - 513 * MIB - 1.5 * 178 * MIB
    expected = int(room // (2 * 178 * MIB / 30 + gradient))
    assert plan.budget_chunk("batched", SMOLLM2, 1.5, limit=10_000) == expected == 14


def test_planned_chunks_grow_with_the_budget_and_stay_within_it() -> None:
    shape = _shape(112, 100)
    chunks = [choose("batched", shape, SMOLLM2, b, 2).chunk_size for b in (1.1, 1.3, 1.5)]
    assert chunks[0] == 1 and chunks == sorted(chunks) and chunks[-1] > 8
    for b in (1.3, 1.5, 2.0):
        planned = choose("auto", shape, SMOLLM2, b, 2)
        assert planned.memory_ratio <= b
    forward = choose("forward", _shape(30, 300), SMOLLM2, 1.5, 2)
    assert forward.chunk_size == 15  # at most 16 (and the budget's 25), evened out over the 30 sources
    assert forward.memory_ratio <= 1.5


def test_attribute_reports_the_plan_it_ran() -> None:
    model = tiny_model("llama")
    ids = torch.randint(0, 96, (40,), generator=torch.Generator().manual_seed(0))
    plans: list[plan.Plan] = []
    attribute(model, ids, torch.arange(3), torch.arange(3, 40), report=plans.append)
    attribute(model, ids, torch.arange(36), torch.arange(36, 40), report=plans.append)
    attribute(model, ids, torch.arange(3), torch.arange(3, 40), mode="loop", report=plans.append)
    assert [p.mode for p in plans] == ["forward", "batched", "loop"]
    assert plans[0].threads == torch.get_num_threads() and plans[0].memory_budget == plan.DEFAULT_MEMORY_BUDGET
    assert plans[0].memory_ratio is not None and plans[2].memory_ratio is None  # the loop needs no estimate
    assert set(plans[0].costs) == {"forward", "batched"} and plans[0].to_json()["mode"] == "forward"


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("attention", ["eager", "sdpa"])
def test_activations_extrapolated_from_short_probes_equal_the_count(family: str, attention: str) -> None:
    """Three short probes fix the quadratic exactly: eager's T × T weights and masks, SDPA's linear terms."""
    from transformers import AutoModelForCausalLM

    torch.manual_seed(0)
    config = tiny_config(family, max_position_embeddings=256)
    model = AutoModelForCausalLM.from_config(config, attn_implementation=attention).eval().requires_grad_(False)
    embeds = model.get_input_embeddings()(torch.randint(0, 96, (200,), generator=torch.Generator().manual_seed(0)))
    for batch in (Padded.of([embeds[:150]]), *(Padded.of([embeds[:200], embeds[:137]], p) for p in PADDING)):
        assert estimated_activation_bytes(model, batch) == activation_bytes(model, batch) > 0


def test_a_fixed_cost_per_pass_favours_fewer_rounds() -> None:
    """On a small model the pass overhead dominates: the cheapest chunk then takes more targets per pass."""
    targets = tuple(range(40, 100))
    # 60 targets after a 40-token prompt: 6 rounds of 10 by the flops alone, 3 of 20 with the organism's overhead
    assert plan.chunk_for("batched", Shape((targets,), (40,)), None, 1.5) == 10
    assert plan.chunk_for("batched", Shape((targets,), (40,), overhead=290.0), None, 1.5) == 20
    assert plan.reverse_cost(Shape((targets,), (40,), 10.0), 20) == pytest.approx(
        plan.reverse_cost(Shape((targets,), (40,)), 20) + 3 * 10.0
    )
    assert plan.forward_cost(Shape((targets,), (40,), 10.0), 8) == pytest.approx(
        plan.forward_cost(Shape((targets,), (40,)), 8) + 5 * 10.0
    )
    # the organism (4 layers, 3.4 M parameters) pays 290 token forwards per pass, SmolLM2 (30, 135 M) 55
    assert plan.pass_overhead(3_410_176, 4) == pytest.approx(287, rel=0.01)
    assert plan.pass_overhead(134_515_008, 30) == pytest.approx(54.6, rel=0.01)


def test_a_small_model_is_budgeted_on_the_minimum_unit() -> None:
    """A 14 MiB model's ratio budget would be a few MiB: it gets MIN_UNIT's, and reports its true ratio."""
    small = Footprint(13 * MIB, 2 * MIB, n_layers=4, n_heads=4, batch=1, length=60, hidden=256)
    k = plan.budget_chunk("batched", small, 1.5, limit=10_000)
    assert plan.base_bytes("batched", small) + k * plan.item_bytes("batched", small) <= 1.5 * plan.MIN_UNIT
    assert k > 64 and plan.memory_ratio("batched", small, k) > 1.5  # above 1.5 × its own unit, within the floor's
    assert plan.budget_chunk("batched", SMOLLM2, 1.5, limit=10_000) == 14  # a large model: unchanged


def test_activation_probes_run_once_per_model_and_batch_layout(monkeypatch: pytest.MonkeyPatch) -> None:
    from shiftlens.attribution import memory

    calls: list[int] = []
    count = memory.activation_bytes
    monkeypatch.setattr(memory, "activation_bytes", lambda m, b: calls.append(b.embeds.shape[1]) or count(m, b))
    from transformers import AutoModelForCausalLM

    config = tiny_config("llama", max_position_embeddings=256)
    model = AutoModelForCausalLM.from_config(config, attn_implementation="eager").eval().requires_grad_(False)
    embeds = model.get_input_embeddings()(torch.randint(0, 96, (120,), generator=torch.Generator().manual_seed(1)))
    first = memory.estimated_activation_bytes(model, Padded.of([embeds[:100]]))
    second = memory.estimated_activation_bytes(model, Padded.of([embeds[:120]]))
    assert calls == list(memory.PROBE_LENGTHS)  # the second length reused the first's probes
    assert (first, second) == (count(model, Padded.of([embeds[:100]])), count(model, Padded.of([embeds[:120]])))
    memory.estimated_activation_bytes(model, Padded.of([embeds[:120], embeds[:90]]))  # another layout: probed anew
    assert len(calls) == 2 * len(memory.PROBE_LENGTHS)
    for n in (16, 23, 40, 48):  # shorter batches read the cached quadratic too, exactly, without a forward
        batch = Padded.of([embeds[:n]])
        assert memory.estimated_activation_bytes(model, batch) == count(model, batch)
    assert len(calls) == 2 * len(memory.PROBE_LENGTHS)
    short = tiny_model("llama", seed=3)
    memory.estimated_activation_bytes(short, Padded.of([embeds[:40]]))  # nothing cached: counted directly
    assert calls[-1] == 40 and short not in memory._PROBES
