"""The vectorised head explainer against planted signals and the literal per-dimension reference."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import tiny_model

from shiftlens.architecture import attention_qk
from shiftlens.heads.core import HeadPairs, PairFilter, explain_layer, top_k_rows, word_thresholds
from shiftlens.heads.reference import reference_explain_layer
from shiftlens.models import ModuleWeights


def unit_rows(n: int, dim: int, seed: int) -> torch.Tensor:
    vectors = torch.randn(n, dim, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    return vectors / vectors.norm(dim=1, keepdim=True)


def assert_same(ours: HeadPairs, reference: HeadPairs) -> None:
    for name, value in ours.arrays().items():
        expected = reference.arrays()[name]
        assert value.shape == expected.shape, name
        if value.dtype.kind in "iu":
            np.testing.assert_array_equal(value, expected, err_msg=name)
        else:
            np.testing.assert_allclose(value, expected, rtol=1e-10, atol=1e-12, equal_nan=True, err_msg=name)


def test_planted_pair_wins_its_dimension():
    torch.manual_seed(0)
    words = 0.1 * torch.randn(60, 16)
    words[7, 0], words[11, 1] = 3.0, 2.0  # query word 7 along axis 0, key word 11 along axis 1
    wq, wk = 0.05 * torch.randn(3, 4, 16), 0.05 * torch.randn(3, 4, 16)
    wq[1, 2, 0], wk[1, 2, 1] = 10.0, 10.0
    cooc = unit_rows(60, 8, seed=1)
    cooc[11] = cooc[7]  # 7 and 11 co-occur
    present = torch.ones(60, dtype=torch.bool)
    pair_filter = PairFilter(cooc, word_thresholds(cooc, present, torch.arange(30)))

    result = explain_layer(words, wq, wk, top_k=5, pair_filter=pair_filter)

    assert result.rank[1, 2] == 0
    in_dim = (result.pair_head == 1) & (result.pair_dim == 2)
    assert (result.pair_query[in_dim][0], result.pair_key[in_dim][0]) == (7, 11)
    assert result.pair_similarity[in_dim][0] == pytest.approx(1.0)
    # Without co-occurrence the pair is still the dimension's strongest by score H_q·H_k.
    plain = explain_layer(words, wq, wk, top_k=5)
    in_dim = (plain.pair_head == 1) & (plain.pair_dim == 2)
    assert (plain.pair_query[in_dim][0], plain.pair_key[in_dim][0]) == (7, 11)
    # Unrelated words (orthogonal co-occurrence vectors) never pair, however strong the dimension.
    cooc[11] = 0.0
    cooc[11, 0], cooc[7] = 1.0, 0.0
    cooc[7, 1] = 1.0
    pair_filter = PairFilter(cooc, word_thresholds(cooc, present, torch.arange(30)))
    blocked = explain_layer(words, wq, wk, top_k=5, pair_filter=pair_filter)
    assert not np.any((blocked.pair_query == 7) & (blocked.pair_key == 11))


def test_pairs_obey_every_rule():
    torch.manual_seed(2)
    words, wq, wk = torch.randn(80, 12), torch.randn(2, 6, 12), torch.randn(2, 6, 12)
    cooc = unit_rows(80, 4, seed=3)
    present = torch.rand(80, generator=torch.Generator().manual_seed(4)) > 0.2
    cooc[~present] = 0
    thresholds = word_thresholds(cooc, present, torch.arange(40), z=0.5)
    result = explain_layer(words, wq, wk, top_k=10, pair_filter=PairFilter(cooc, thresholds))
    assert len(result.pair_dim) > 0
    q, k = result.pair_query, result.pair_key
    assert np.all(q != k) and np.all(result.pair_score > 0)
    assert np.all(present.numpy()[q] & present.numpy()[k])
    theta = thresholds.numpy()
    assert np.all(result.pair_similarity > np.maximum(theta[q], theta[k]))
    hq = np.einsum("vh,nh->vn", words.double().numpy(), wq.reshape(-1, 12).double().numpy())
    top_q = np.argsort(-np.abs(hq), axis=0)[:10]
    flat = result.pair_head * 6 + result.pair_dim
    assert all(query in top_q[:, d] for query, d in zip(q, flat))


@pytest.mark.parametrize(("family", "overrides"), [("llama", {}), ("gpt2", {}), ("gemma", {})])
@pytest.mark.parametrize("with_cooccurrence", [True, False])
def test_model_layers_match_the_literal_reference(family, overrides, with_cooccurrence):
    model = tiny_model(family, seed=5, **overrides)
    source = ModuleWeights(model)
    gen = torch.Generator().manual_seed(6)
    token_ids = list({tuple(torch.randint(0, 96, (3,), generator=gen)[: 1 + i % 3].tolist()) for i in range(90)})[:70]
    embed = model.get_input_embeddings().weight.detach()
    words = torch.stack([embed[list(ids)].mean(0) for ids in token_ids])  # distinct words
    cooc = unit_rows(70, 6, seed=7)
    present = torch.ones(70, dtype=torch.bool)
    present[::9] = False
    cooc[~present] = 0
    reference_words = list(range(25))
    pair_filter = None
    if with_cooccurrence:
        pair_filter = PairFilter(cooc, word_thresholds(cooc, present, torch.tensor(reference_words), z=0.3))
    for layer in range(model.config.num_hidden_layers):
        wq, wk = attention_qk(source, model.config, layer)
        ours = explain_layer(words, wq, wk, top_k=9, pair_filter=pair_filter, max_pairs=12, dims_per_block=5)
        reference = reference_explain_layer(
            words,
            wq,
            wk,
            9,
            (cooc, present) if with_cooccurrence else None,
            reference_words,
            z=0.3,
            max_pairs=12,
        )
        assert_same(ours, reference)
        assert len(ours.pair_dim) > 10


def test_grouped_query_heads_share_keys_in_the_output():
    model = tiny_model("llama", seed=8)  # 4 query heads, 2 KV heads
    wq, wk = attention_qk(ModuleWeights(model), model.config, 0)
    words = model.get_input_embeddings().weight.detach()[:50]
    result = explain_layer(words, wq, wk, top_k=6)
    reference = reference_explain_layer(words, wq, wk, 6, heads=[2, 3])
    subset = explain_layer(words, wq[2:], wk[2:], top_k=6)
    assert_same(subset, reference)
    np.testing.assert_allclose(result.energy[2:], reference.energy, rtol=1e-12)
    torch.testing.assert_close(wk[2], wk[3])  # heads 2 and 3 share one key head
    assert not torch.equal(wk[1], wk[2])


def test_thresholds_are_mean_plus_z_std_over_reference_words():
    cooc = unit_rows(20, 5, seed=9)
    present = torch.ones(20, dtype=torch.bool)
    present[3] = False
    cooc[3] = 0
    reference = torch.tensor([0, 1, 2, 3, 4, 5])
    got = word_thresholds(cooc, present, reference, z=1.96, chunk=7)
    refs = [0, 1, 2, 4, 5]  # word 3 has no vector, so it is no reference
    for word in range(20):
        sims = [float(cooc[word] @ cooc[r]) for r in refs]
        expected = float("inf") if word == 3 else np.mean(sims) + 1.96 * np.std(sims)
        assert got[word].item() == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize("with_cooccurrence", [True, False])
def test_exact_ties_at_the_top_k_boundary_are_broken_as_in_the_reference(with_cooccurrence):
    """Duplicate word vectors tie exactly in |H_q| and |H_k|; the lower word index wins, as in a stable sort."""
    gen = torch.Generator().manual_seed(11)
    distinct = torch.randint(-2, 3, (12, 8), generator=gen).double()
    words = distinct[torch.randint(0, 12, (120,), generator=gen)]  # every vector shared by ~10 words
    wq = torch.randint(-1, 2, (2, 4, 8), generator=gen).double()
    wk = torch.randint(-1, 2, (2, 4, 8), generator=gen).double()
    hq = (words @ wq.reshape(-1, 8).T).abs()
    kth = hq.topk(7, dim=0).values[-1]
    assert bool(((hq == kth).sum(0) > 1).all())  # the 7th candidate ties with others in every dimension
    cooc, present, pair_filter = unit_rows(120, 5, seed=12), torch.ones(120, dtype=torch.bool), None
    if with_cooccurrence:
        pair_filter = PairFilter(cooc, word_thresholds(cooc, present, torch.arange(40), z=-1.0))
    ours = explain_layer(words, wq, wk, top_k=7, pair_filter=pair_filter)
    reference = reference_explain_layer(
        words, wq, wk, 7, (cooc, present) if with_cooccurrence else None, list(range(40)), z=-1.0
    )
    assert len(ours.pair_dim) > 20
    assert_same(ours, reference)


def test_top_k_rows_is_the_stable_sort_selection():
    values = torch.tensor([[3.0, 1.0], [2.0, 1.0], [2.0, 1.0], [5.0, 0.0], [2.0, 1.0]], dtype=torch.float64)
    for k in range(1, 6):
        got = top_k_rows(values, k).sort(0).values.T.tolist()
        expected = [sorted(np.argsort(-values[:, c].numpy(), kind="stable")[:k].tolist()) for c in range(2)]
        assert got == expected
