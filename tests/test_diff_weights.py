"""The weight-delta map (issue 17): literal statistics, a model against itself, a LoRA pair built here."""

from __future__ import annotations

import copy
import math

import pytest
import torch
from conftest import save_tiny_model, tiny_model

from shiftlens.diff import delta as delta_module
from shiftlens.diff.delta import (
    Difference,
    LowRank,
    accumulate,
    delta_stats,
    effective_rank,
    principal_angle,
    singular_values,
)
from shiftlens.diff.lora import AdapterError, lora_updates
from shiftlens.diff.weights import WeightDiffError, weight_map
from shiftlens.models.sources import ModuleWeights
from shiftlens.nulls import perturb_like


def reference_stats(base: torch.Tensor, tuned: torch.Tensor, k: int = 8) -> tuple[float, int, float]:
    """‖ΔW‖/‖W‖, the 99 %-energy rank and the largest principal angle, literally: full SVDs, float64."""
    base, tuned = base.double(), tuned.double()
    delta = tuned - base
    squares = torch.linalg.svdvals(delta) ** 2
    rank = next(m for m in range(1, len(squares) + 1) if squares[:m].sum() >= 0.99 * squares.sum())
    top_base, top_tuned = torch.linalg.svd(base).U[:, :k], torch.linalg.svd(tuned).U[:, :k]
    cosine = float(torch.linalg.svdvals(top_base.T @ top_tuned).min())
    return float(delta.norm() / base.norm()), rank, math.degrees(math.acos(min(1.0, cosine)))


@pytest.mark.parametrize("shape", [(40, 24), (24, 40), (30, 30)])
def test_gram_statistics_match_full_svds_in_any_blocking(shape, monkeypatch) -> None:
    """Tall, wide and square W, read in one block or in blocks of a few rows/columns: the literal SVD's figures."""
    g = torch.Generator().manual_seed(5)
    base = torch.randn(shape, generator=g, dtype=torch.float64)
    low = LowRank(torch.randn(shape[0], 3, generator=g), torch.randn(3, shape[1], generator=g), scale=0.2)
    tuned = base + low.dense()
    rel, rank, angle = reference_stats(base, tuned)
    for block in (1 << 21, 50):  # 50 elements: blocks of one or two rows/columns
        monkeypatch.setattr(delta_module, "BLOCK", block)
        for delta in (low, low.dense(), Difference(tuned, base)):
            stats = delta_stats(base, delta)[0]
            assert stats.rel_frobenius == pytest.approx(rel, rel=1e-9)
            assert stats.effective_rank == rank
            assert stats.principal_angle_deg == pytest.approx(angle, abs=1e-6)


def test_the_null_is_perturb_like_noise_gram_by_gram(monkeypatch) -> None:
    """Tall W in one block: exactly perturb_like's draw. Wide W in blocks: every noise row as long as ΔW's."""
    g = torch.Generator().manual_seed(6)
    tall, delta = torch.randn(40, 12, generator=g, dtype=torch.float64), torch.randn(40, 12, generator=g) * 0.1
    _, null = accumulate(tall, delta.double(), torch.Generator().manual_seed(0))
    noise = perturb_like(tall, tall + delta, torch.Generator().manual_seed(0)) - tall
    assert torch.allclose(null.uu, noise.T @ noise) and torch.allclose(null.wu, tall.T @ noise)
    monkeypatch.setattr(delta_module, "BLOCK", 40)
    wide, delta = tall.T.contiguous(), delta.T.contiguous()
    _, null = accumulate(wide, delta.double(), torch.Generator().manual_seed(0))
    assert torch.allclose(null.uu.diagonal(), (delta.double() ** 2).sum(1))
    _, other = accumulate(wide, delta.double(), torch.Generator().manual_seed(1))
    assert not torch.allclose(null.uu, other.uu)  # noise, not a function of ΔW alone


def test_statistics_by_hand() -> None:
    g = torch.Generator().manual_seed(0)
    base = torch.randn(20, 12, generator=g, dtype=torch.float64)
    u, _ = torch.linalg.qr(torch.randn(20, 3, generator=g, dtype=torch.float64))
    v, _ = torch.linalg.qr(torch.randn(12, 3, generator=g, dtype=torch.float64))
    delta = u @ torch.diag(torch.tensor([3.0, 2.0, 1.0], dtype=torch.float64)) @ v.T
    stats = delta_stats(base, delta)[0]
    assert stats.rel_frobenius == pytest.approx(math.sqrt(14) / float(base.norm()))
    assert stats.effective_rank == 3  # 9 + 4 + 1: the first two hold 13/14 < 0.99
    assert effective_rank(torch.tensor([3.0, 2.0, 0.01])) == 2  # 13 / 13.0001 ≥ 0.99
    assert effective_rank(torch.zeros(4)) == 0
    low = LowRank(torch.randn(20, 2, generator=g), torch.randn(2, 12, generator=g), scale=0.5)
    assert torch.allclose(low.singular_values(), singular_values(low.dense())[:2])
    assert delta_stats(base, low)[0].rel_frobenius == pytest.approx(delta_stats(base, low.dense())[0].rel_frobenius)


def test_principal_angle_of_a_known_rotation() -> None:
    g = torch.Generator().manual_seed(1)
    u, _ = torch.linalg.qr(torch.randn(30, 30, generator=g, dtype=torch.float64))
    v, _ = torch.linalg.qr(torch.randn(16, 16, generator=g, dtype=torch.float64))
    s = torch.cat([torch.linspace(10, 5, 8), torch.linspace(1, 0.5, 8)]).double()
    base = u[:, :16] @ torch.diag(s) @ v.T
    theta = math.radians(20)
    turned = u.clone()  # turn the 8th left singular vector towards the 17th (outside the matrix's range)
    turned[:, 7] = math.cos(theta) * u[:, 7] + math.sin(theta) * u[:, 16]
    tuned = turned[:, :16] @ torch.diag(s) @ v.T
    assert principal_angle(base, tuned, k=8) == pytest.approx(20.0, abs=1e-6)
    assert principal_angle(base, base, k=8) == pytest.approx(0.0, abs=1e-5)
    assert principal_angle(torch.ones(5), torch.ones(5)) is None


def test_a_model_against_itself_changed_nothing() -> None:
    model = tiny_model("llama")
    rows = weight_map(ModuleWeights(model), model.config, ModuleWeights(model))
    assert rows and all(r["rel_frobenius"] == 0.0 and r["effective_rank"] == 0 for r in rows)
    modules = {r["module"] for r in rows}
    layer_modules = {"q", "k", "v", "o", "gate", "up", "down", "attn_norm", "mlp_norm"}
    assert modules == {"embed", "final_norm", "unembed"} | layer_modules
    heads = {(r["module"], r["head"]) for r in rows if r["layer"] == 0 and r["head"] >= 0}
    query_heads = {(m, h) for m in "qo" for h in range(4)}
    assert heads == query_heads | {(m, h) for m in "kv" for h in range(2)}  # 2 grouped key/value heads


@pytest.fixture
def lora_pair(tmp_path):
    """A tiny Llama and a rank-2 LoRA on q_proj and v_proj of every layer (B non-zero), saved by PEFT."""
    from peft import LoraConfig, get_peft_model

    base = tiny_model("llama")
    tuned = get_peft_model(tiny_model("llama"), LoraConfig(r=2, lora_alpha=4, target_modules=["q_proj", "v_proj"]))
    g = torch.Generator().manual_seed(3)
    for name, parameter in tuned.named_parameters():
        if "lora_B" in name:
            parameter.data = torch.randn(parameter.shape, generator=g) * 0.1
    tuned.save_pretrained(tmp_path / "adapter")
    return base, tuned, tmp_path / "adapter"


def test_a_lora_shows_exactly_on_its_modules_with_its_rank(lora_pair) -> None:
    base, tuned, adapter = lora_pair
    rows = weight_map(ModuleWeights(base), base.config, lora_updates(adapter))
    changed = {(r["layer"], r["module"]) for r in rows if r["rel_frobenius"] > 0 and r["head"] == -1}
    assert changed == {(layer, m) for layer in range(2) for m in "qv"}
    heads = [r for r in rows if r["head"] >= 0]
    assert {(r["module"], r["rel_frobenius"] > 0) for r in heads} == {
        ("q", True),
        ("v", True),
        ("k", False),
        ("o", False),
    }
    assert all(r["effective_rank"] <= 2 for r in rows)
    assert max(r["effective_rank"] for r in rows if r["module"] in "qv") == 2
    merged = tuned.merge_and_unload()
    dense = weight_map(ModuleWeights(base), base.config, ModuleWeights(merged))
    for lr, dr in zip(rows, dense, strict=True):
        assert (lr["layer"], lr["module"], lr["head"]) == (dr["layer"], dr["module"], dr["head"])
        assert lr["rel_frobenius"] == pytest.approx(dr["rel_frobenius"], rel=1e-5, abs=1e-9)


def test_mismatched_inputs_are_one_line_errors(lora_pair, tmp_path) -> None:
    base, _, adapter = lora_pair
    other = tiny_model("llama", hidden_size=64)
    with pytest.raises(WeightDiffError, match=r"model.embed_tokens.weight: base \(96, 32\) vs tuned \(96, 64\)"):
        weight_map(ModuleWeights(base), base.config, ModuleWeights(other))
    with pytest.raises(WeightDiffError, match="the adapter's model.layers.0.self_attn.q_proj.weight is"):
        weight_map(ModuleWeights(other), other.config, lora_updates(adapter))
    deeper = tiny_model("llama", num_hidden_layers=1)
    with pytest.raises(WeightDiffError, match="which the model does not have"):
        weight_map(ModuleWeights(deeper), deeper.config, lora_updates(adapter))
    (tmp_path / "empty").mkdir()
    with pytest.raises(AdapterError, match="adapter_config.json not found"):
        lora_updates(tmp_path / "empty")


def test_the_null_is_full_rank_noise_of_the_same_size(lora_pair) -> None:
    """Noise as large as the LoRA, row by row: full rank where the LoRA has rank 2, zero where nothing changed."""
    base, _, adapter = lora_pair
    rows = weight_map(ModuleWeights(base), base.config, lora_updates(adapter), null_seed=0)
    for row in rows:
        if row["head"] != -1:
            continue
        if row["module"] in ("q", "v"):
            assert row["effective_rank"] == 2 < row["effective_rank_null"]
        else:
            assert row["effective_rank"] == row["effective_rank_null"] == 0
    assert weight_map(ModuleWeights(base), base.config, lora_updates(adapter), null_seed=0) == rows  # seeded
    assert "effective_rank_null" not in weight_map(ModuleWeights(base), base.config, lora_updates(adapter), None)[0]


def test_diff_weights_writes_the_map_of_two_checkpoints_or_an_adapter(tmp_path) -> None:
    import pyarrow.parquet as pq
    from peft import LoraConfig, get_peft_model

    from shiftlens.diff.run import diff_weights

    base, _ = save_tiny_model(tmp_path / "base")
    save_tiny_model(tmp_path / "other", seed=1)
    table = pq.read_table(diff_weights(str(tmp_path / "base"), str(tmp_path / "other"), tmp_path / "d1")).to_pydict()
    assert {"layer", "module", "head", "rel_frobenius", "effective_rank", "effective_rank_null"} <= set(table)
    matrices = [r for m, r in zip(table["module"], table["rel_frobenius"]) if not m.endswith("norm")]
    assert min(matrices) > 0  # another seed: every matrix differs (the norms' gains start at 1 in both)
    tuned = get_peft_model(copy.deepcopy(base), LoraConfig(r=1, target_modules=["k_proj"]))
    for name, parameter in tuned.named_parameters():
        if "lora_B" in name:
            parameter.data = torch.full(parameter.shape, 0.01)
    tuned.save_pretrained(tmp_path / "adapter")
    path = diff_weights(str(tmp_path / "base"), None, tmp_path / "d2", adapter=tmp_path / "adapter")
    lora = pq.read_table(path).to_pydict()
    expected = weight_map(ModuleWeights(base), base.config, lora_updates(tmp_path / "adapter"))
    assert lora["rel_frobenius"] == pytest.approx([r["rel_frobenius"] for r in expected])
    assert {m for m, r in zip(lora["module"], lora["rel_frobenius"]) if r > 0} == {"k"}
    with pytest.raises(ValueError, match="not both or neither"):
        diff_weights(str(tmp_path / "base"), str(tmp_path / "other"), tmp_path / "d3", adapter=tmp_path / "adapter")


def test_a_built_in_adapter_is_read_by_its_name() -> None:
    updates = lora_updates("smollm2-lora-demo")
    assert updates and all(".layers." in name for name in updates)
    assert all(update.a.shape[0] == 8 for update in updates.values())  # rank 8 (docs/scale.md)


def _head_moves(base, noisy, module: str) -> dict[tuple[int, int], float]:
    """(layer, head) -> relative Frobenius change of one attention projection's head, from the weight map."""
    rows = weight_map(ModuleWeights(base), base.config, ModuleWeights(noisy), null_seed=None)
    return {(r["layer"], r["head"]): r["rel_frobenius"] for r in rows if r["module"] == module and r["head"] >= 0}


def test_the_map_localises_a_head_planted_under_a_tuning_sized_update() -> None:
    """Organism-base moved row by row as much as organism-tuned (noise, no structure), plus one planted head in
    its last layer (query head 5, key head 2) moved 4 times as much as noise moves any head: that head, in that
    layer, stands out."""
    from shiftlens.models import load_model

    base, tuned = load_model("organism-base").model, load_model("organism-tuned").model
    assert base.config.model_type == "gpt2"  # fused c_attn (Conv1D: columns are output units)
    noisy = copy.deepcopy(base)
    g = torch.Generator().manual_seed(0)
    layer, width, hidden = base.config.n_layer - 1, base.config.n_embd // base.config.n_head, base.config.n_embd
    with torch.no_grad():
        for (name, p), q in zip(noisy.named_parameters(), tuned.parameters(), strict=True):
            if p.ndim == 2 and not any(part in name for part in ("wte", "wpe")):  # not the embeddings
                p.copy_(perturb_like(p, q, g))
        noise = max(max(_head_moves(base, noisy, module).values()) for module in ("q", "k"))
        weight = noisy.transformer.h[layer].attn.c_attn.weight  # (hidden, 3 * hidden): q, k, v
        for offset, head in ((0, 5), (hidden, 2)):
            cols = weight[:, offset + head * width : offset + (head + 1) * width]
            step = torch.randn(cols.shape, generator=g)
            cols += 4 * noise * step / step.norm(dim=0, keepdim=True) * cols.norm(dim=0, keepdim=True)
    for module, planted in (("q", 5), ("k", 2)):
        heads = _head_moves(base, noisy, module)
        assert max(heads, key=heads.get) == (layer, planted)
        others = [v for key, v in heads.items() if key != (layer, planted)]
        assert heads[(layer, planted)] > 3 * max(others), (heads[(layer, planted)], max(others))


@pytest.mark.parametrize("name", ["organism-tuned", "organism-tuned-seed1", "organism-tuned-seed2"])
def test_the_map_finds_the_heads_the_ablation_names_on_the_shipped_organism(name: str) -> None:
    """On every shipped tuning seed, the head whose ablation costs a planted task most (metrics.json: the
    picked word of choose, the Zorbish word of translate) moved most, in W_q, of the 8 heads of its layer."""
    import json

    from shiftlens import organism
    from shiftlens.models import load_model

    metrics = json.loads((organism.data_dir() / "metrics.json").read_text())
    variant = organism.BUILTIN_NAMES[name]
    base, tuned = load_model("organism-base").model, load_model(name).model
    heads = _head_moves(base, tuned, "q")
    for task, ablation in metrics["head_ablation"][variant].items():
        layer, head = map(int, ablation["top_head"].split("."))
        assert ablation["drop_by_head"][ablation["top_head"]] >= 0.1, (task, ablation["top_head"])
        layer_heads = {h: v for (lay, h), v in heads.items() if lay == layer}
        assert max(layer_heads, key=layer_heads.get) == head, (task, layer_heads)
