"""Positive controls by weight surgery (issue 14): each method recovers a planted shift and stays quiet without one.

Thresholds are the measured ones on the organism (docs/validation.md), with margin: heads recall ≥ 0.9 at
2 × the row norm, FFN recovery ≥ 0.9 at a variance ≥ the layer's largest eigenvalue, nothing at strength 0.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from shiftlens import organism
from shiftlens.analysis.heads import compare_pairs, word_list
from shiftlens.heads.core import explain_layer
from shiftlens.heads.records import unit_rows
from shiftlens.validation.attribution_control import PointerLM, pointer_rank
from shiftlens.validation.ffn_control import concept_curve, concept_groups
from shiftlens.validation.heads_control import choose_plants, head_curve, verb_plants
from shiftlens.validation.inputs import ControlInputs, control_inputs
from shiftlens.validation.surgery import PlantedPairs, even_direction, plant_concept, plant_head_pairs


@pytest.fixture(scope="module")
def base() -> ControlInputs:
    return control_inputs("organism-base", organism.vocab_path())


def test_even_direction_lifts_every_word_equally() -> None:
    vectors = torch.randn(4, 16, generator=torch.Generator().manual_seed(0), dtype=torch.float64) * torch.tensor(
        [[1.0], [5.0], [0.2], [2.0]], dtype=torch.float64
    )
    d = even_direction(vectors)
    projections = vectors @ d
    assert float(d.norm()) == pytest.approx(1.0)
    assert torch.allclose(projections, projections[0].expand(4)) and projections[0] > 0
    assert torch.allclose(even_direction(vectors[:1]), vectors[0] / vectors[0].norm())


def test_surgery_edits_only_the_planted_rows_and_plants_the_variance() -> None:
    g = torch.Generator().manual_seed(1)
    wq, wk = torch.randn(2, 4, 8, generator=g), torch.randn(2, 4, 8, generator=g)
    words = torch.randn(10, 8, generator=g)
    q, k = plant_head_pairs(wq, wk, words, [PlantedPairs(1, 2, 3, (4, 5))], 2.0)
    changed = ((q != wq.double()).any(-1) | (k != wk.double()).any(-1)).nonzero().tolist()
    assert changed == [[1, 2]]
    assert float((q[1, 2] - wq[1, 2].double()).norm()) == pytest.approx(2.0 * float(wq[1, 2].norm()))
    rows = torch.randn(20_000, 6, generator=g, dtype=torch.float64)
    direction = torch.nn.functional.normalize(torch.ones(6, dtype=torch.float64), dim=0)
    planted = plant_concept(rows, direction, 4.0, torch.Generator().manual_seed(2))
    assert float((planted @ direction).var() - (rows @ direction).var()) == pytest.approx(4.0, rel=0.05)


def test_planted_head_pairs_are_recovered_as_strength_grows(base: ControlInputs) -> None:
    wq, wk = base.attention(1)
    n_heads, head_dim, _ = wq.shape
    plants = choose_plants(len(base.words), n_heads, head_dim, 40, 2, seed=0, pair_filter=base.pair_filter)
    curve = head_curve(base.words, wq, wk, plants, [0, 0.5, 1, 2, 4], 100, base.pair_filter)
    recall = [c.recall for c in curve]
    precision = [c.precision for c in curve]
    assert recall == sorted(recall) and recall[0] == 0.0 and recall[3] >= 0.9  # measured 0, 0.09, 0.60, 1, 1
    assert precision[0] == 0.0 and precision[-1] >= 0.8  # the strongest pairs of the dimension: measured 0.95


def test_table3_flags_planted_verbs_and_not_random_words(base: ControlInputs) -> None:
    index = base.word_index
    general = [w for w in word_list() if w in index]
    rng = np.random.default_rng(0)
    planted = [str(w) for w in rng.choice(general, 10, replace=False)]
    others = [str(w) for w in rng.choice([w for w in general if w not in planted], 10, replace=False)]
    rows = {"base": [], "tuned": []}
    for layer in range(base.n_layers):
        wq, wk = base.attention(layer)
        plants = verb_plants(index, planted, wq.shape[0], wq.shape[1], 2, seed=layer, pair_filter=base.pair_filter)
        q, k = plant_head_pairs(wq, wk, base.words, plants, 2.0)
        for side, (a, b) in (("base", (wq, wk)), ("tuned", (q, k))):
            result = explain_layer(base.words, a, b, 100, base.pair_filter)
            rows[side].append(unit_rows(layer, result.arrays(), base.vocabulary.words))
    flat = {side: {key: np.concatenate([r[key] for r in parts]) for key in parts[0]} for side, parts in rows.items()}
    flagged = compare_pairs(flat["base"], flat["tuned"], planted, [w for w in general if w not in planted])
    assert flagged.groups[0]["significant"] and flagged.groups[0]["p_value"] < 0.01  # measured 0.0033
    assert flagged.groups[0]["effect_size"] > 0
    random_words = compare_pairs(flat["base"], flat["tuned"], others, [w for w in general if w not in others])
    assert not random_words.groups[0]["significant"]


def test_a_planted_concept_is_recovered_as_its_variance_grows(base: ControlInputs) -> None:
    groups = concept_groups(base.output_words, 10)
    curve = concept_curve(base.down_rows(1), base.output_words, groups, [0, 0.25, 0.5, 1, 2])
    recovered = [c.recovered for c in curve]
    # measured on the v2 base 0.1, 0.6, 0.9, 1, 1: unplanted, one group (a word and its 4 nearest neighbours) of
    # ten is already held by a component; planting lifts the rest
    assert recovered == sorted(recovered) and recovered[0] <= 0.1 and recovered[-1] > recovered[0]
    assert min(recovered[3:]) >= 0.9


@pytest.mark.parametrize("mode", ["loop", "batched", "forward"])
@pytest.mark.parametrize("mix", [0.0, 0.1])
def test_attribution_ranks_the_token_the_response_reads_first(mode: str, mix: float) -> None:
    for pointer in (0, 2, 7):
        model = PointerLM(pointer=pointer, mix=mix)
        rank, density = pointer_rank(model, 12, 8, mode)
        assert rank == 0
        if mix == 0.0:  # provably: no other prompt token reaches the response
            assert np.count_nonzero(density) == 1
