"""The attribution core: every mode and objective equals the literal reference, finite differences, causality,
frozen parameters, the forward→batched→loop fallback and clear errors for bad positions."""

from __future__ import annotations

import pytest
import torch
from conftest import FAMILIES, tiny_model

from shiftlens.attribution import core
from shiftlens.attribution.core import OBJECTIVES, AttributionError, attribute
from shiftlens.attribution.gradients import chunk_gradients, head_gradients
from shiftlens.attribution.reference import attribute_paper_style, attribute_reference, literal_objective
from shiftlens.errors import ShiftlensError

T, N = 14, 6
SOURCES = torch.tensor([0, 2, 3, 5, 1])  # a subset, out of order
TARGETS = torch.tensor([9, 6, 13, 7, 11, 12, 8])  # unsorted: columns must follow this order


def _ids(seed: int = 0) -> torch.Tensor:
    return torch.randint(0, 96, (T,), generator=torch.Generator().manual_seed(seed))


def _rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).abs().max() / b.abs().max())


@pytest.mark.parametrize("family", ["llama", "gpt2"])
@pytest.mark.parametrize("objective", OBJECTIVES)
def test_every_mode_equals_reference(family: str, objective: str) -> None:
    model = tiny_model(family)
    ids = _ids()
    ref = attribute_reference(model, ids, SOURCES, TARGETS, objective)
    assert ref.shape == (len(SOURCES), len(TARGETS)) and ref.dtype == torch.float32
    assert ref.abs().max() > 0
    for mode in ("loop", "batched", "forward", "auto"):
        for chunk in (None, 1, 3):
            out = attribute(model, ids, SOURCES, TARGETS, objective=objective, mode=mode, chunk_size=chunk)
            assert out.dtype == torch.float32 and out.device.type == "cpu"
            assert _rel(out, ref) <= 1e-5, (mode, chunk)


@pytest.mark.parametrize("family", [f for f in FAMILIES if f not in ("llama", "gpt2")])
def test_other_families_equal_reference(family: str) -> None:
    model = tiny_model(family, seed=1).double()
    ids = _ids(1)
    ref = attribute_reference(model, ids, SOURCES, TARGETS, "prob")
    assert _rel(attribute(model, ids, SOURCES, TARGETS, mode="loop", chunk_size=3), ref) <= 1e-5
    assert _rel(attribute(model, ids, SOURCES, TARGETS, mode="batched", chunk_size=4), ref) <= 1e-5
    assert _rel(attribute(model, ids, SOURCES, TARGETS, mode="forward", chunk_size=2), ref) <= 1e-5


def test_paper_style_equals_reference_and_restores_flags() -> None:
    model = tiny_model("llama")
    model.model.layers[0].mlp.up_proj.weight.requires_grad_(True)
    ids = _ids()
    ref = attribute_reference(model, ids, SOURCES, TARGETS, "prob")
    assert _rel(attribute_paper_style(model, ids, SOURCES, TARGETS, "prob"), ref) <= 1e-6
    trainable = [name for name, p in model.named_parameters() if p.requires_grad]
    assert trainable == ["model.layers.0.mlp.up_proj.weight"]
    assert all(p.grad is None for p in model.parameters())


@pytest.mark.parametrize("objective", OBJECTIVES)
def test_finite_differences(objective: str) -> None:
    """d/dα f_j(e_n·(1+α)) at α=0 equals e_n·∇_{e_n} f_j, by central differences in float64."""
    model = tiny_model("gpt2", seed=2).double()
    ids = _ids(2)
    sources, targets = torch.tensor([0, 3, 5]), torch.tensor([6, 10, 13])
    ours = attribute(model, ids, sources, targets, objective=objective, chunk_size=2)
    embeds = model.get_input_embeddings()(ids).detach()
    step = 1e-6
    numeric = torch.zeros_like(ours)
    for a, n in enumerate(sources.tolist()):
        values = []
        for sign in (1.0, -1.0):
            scaled = embeds.clone()
            scaled[n] *= 1 + sign * step
            with torch.no_grad():
                logits = model(inputs_embeds=scaled[None]).logits[0, targets - 1]
            values.append(
                torch.stack([literal_objective(row, int(y), objective) for row, y in zip(logits, ids[targets])])
            )
        numeric[a] = ((values[0] - values[1]) / (2 * step)).float()
    assert ours.abs().min() > 0
    assert _rel(ours, numeric) <= 1e-6


def test_no_gradient_reaches_the_target_or_later_positions() -> None:
    model = tiny_model("llama", seed=3)
    ids = _ids(3)
    targets = torch.tensor([5, 9, 13])
    embeds = model.get_input_embeddings()(ids).detach()
    for batched in (False, True):
        grads = chunk_gradients(model, embeds, targets - 1, ids[targets], "prob", batched=batched)
        assert grads.shape == (3, T, embeds.shape[1])
        for i, t in enumerate(targets.tolist()):
            assert torch.all(grads[i, t:] == 0)
            assert torch.all(grads[i, :t].abs().sum(-1) > 0)


@pytest.mark.parametrize("attention", ["eager", "sdpa"])
def test_parameters_never_require_grad_and_state_is_restored(attention: str) -> None:
    model = tiny_model("llama", attention=attention)
    model.requires_grad_(True).train()
    seen: list[bool] = []
    model.model.layers[0].register_forward_pre_hook(
        lambda module, args: seen.append(any(p.requires_grad for p in model.parameters()) or module.training)
    )
    attribute(model, _ids(), SOURCES, TARGETS, mode="loop", chunk_size=3)
    attribute(model, _ids(), SOURCES, TARGETS, mode="batched", chunk_size=3)
    attribute(model, _ids(), SOURCES, TARGETS, mode="forward", chunk_size=3)
    assert seen and not any(seen)
    assert all(p.requires_grad and p.grad is None for p in model.parameters())
    assert model.training


def test_head_gradients_closed_form() -> None:
    """∂f/∂h in float32 from bf16 states equals the literal formulas, bias included."""
    torch.manual_seed(4)
    hidden = torch.randn(3, 8).to(torch.bfloat16)
    weight, bias, tokens = torch.randn(20, 8), torch.randn(20), torch.tensor([4, 0, 19])
    h = hidden.float()
    p = torch.softmax(h @ weight.T + bias, -1)
    expected_logprob = weight[tokens] - p @ weight
    expected = {
        "logit": weight[tokens],
        "logprob": expected_logprob,
        "prob": p.gather(-1, tokens[:, None]) * expected_logprob,
    }
    for objective, want in expected.items():
        got = head_gradients(hidden, weight, bias, tokens, objective)
        assert got.dtype == torch.float32
        torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-6)


class _NoVmapBackward(torch.autograd.Function):
    """Identity whose backward reads a Python scalar: fine in a plain backward, impossible under vmap."""

    @staticmethod
    def forward(ctx, x):  # noqa: ANN001, ANN205
        return x.clone()

    @staticmethod
    def backward(ctx, grad):  # noqa: ANN001, ANN205
        return grad * (1.0 if grad.abs().sum().item() >= 0 else 0.0)


def test_auto_falls_back_to_loop_when_batching_fails() -> None:
    """The hook's Function has no vmap rule (nor a forward-AD one): forward and batched fail, auto ends in the loop."""
    model = tiny_model("llama")
    ids = _ids()
    ref = attribute_reference(model, ids, SOURCES, TARGETS, "prob")
    model.model.layers[1].register_forward_hook(lambda m, args, out: _NoVmapBackward.apply(out))
    with pytest.raises(AttributionError, match="batched attribution failed"):
        attribute(model, ids, SOURCES, TARGETS, mode="batched")
    with pytest.raises(AttributionError, match="forward attribution failed"):
        attribute(model, ids, SOURCES, TARGETS, mode="forward")
    plans: list[core.Plan] = []
    with pytest.warns(UserWarning, match="batched attribution failed .*; falling back to loop"):
        out = attribute(model, ids, SOURCES, TARGETS, mode="auto", chunk_size=3, report=plans.append)
    assert _rel(out, ref) <= 1e-5
    assert [p.mode for p in plans] == ["loop"]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (dict(target_positions=torch.tensor([], dtype=torch.long)), "target_positions is empty"),
        (dict(source_positions=torch.tensor([], dtype=torch.long)), "source_positions is empty"),
        (
            dict(source_positions=torch.tensor([0]), target_positions=torch.tensor([0, 3])),
            "target position 0",
        ),
        (dict(source_positions=torch.tensor([0, 7])), "source position 7 is not before the first target"),
        (dict(source_positions=torch.tensor([0, 6])), "source position 6 is not before the first target"),
        (dict(target_positions=torch.tensor([6, T])), f"position {T} outside the sequence of length {T}"),
        (dict(source_positions=torch.tensor([-1, 2])), "position -1 outside"),
        (dict(source_positions=torch.tensor([0.0, 1.0])), "source_positions must be a 1-D integer tensor"),
        (dict(target_positions=torch.tensor([[6, 7]])), "target_positions must be a 1-D integer tensor"),
        (dict(input_ids=torch.zeros(2, T, dtype=torch.long)), "input_ids must be one 1-D integer sequence"),
        (dict(objective="loss"), "unknown objective 'loss'"),
        (dict(mode="fast"), "unknown mode 'fast'"),
        (dict(chunk_size=0), "chunk_size must be at least 1"),
    ],
)
def test_bad_inputs_raise_clear_errors(kwargs: dict, message: str) -> None:
    args = dict(input_ids=_ids(), source_positions=torch.arange(N), target_positions=torch.arange(N, T))
    options = {k: kwargs.pop(k) for k in ("objective", "mode", "chunk_size") if k in kwargs}
    args.update(kwargs)
    with pytest.raises(ShiftlensError, match=message):
        attribute(tiny_model("llama"), **args, **options)


@pytest.mark.slow
def test_smollm2_auto_equals_reference(smollm2) -> None:  # noqa: ANN001
    tokenizer = smollm2.tokenizer
    messages = [{"role": "user", "content": "Name two colours of the sky."}]
    prompt = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    prompt_ids = tokenizer(prompt, add_special_tokens=False)["input_ids"]
    response_ids = tokenizer("Blue and grey.", add_special_tokens=False)["input_ids"]
    ids = torch.tensor(prompt_ids + response_ids)
    sources = torch.arange(len(prompt_ids))
    targets = torch.arange(len(prompt_ids), len(ids))
    ref = attribute_reference(smollm2.model, ids, sources, targets, "prob")
    out = attribute(smollm2.model, ids, sources, targets, chunk_size=3)
    assert _rel(out, ref) <= 1e-4
