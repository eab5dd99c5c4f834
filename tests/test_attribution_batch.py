"""Attribution of several sequences in shared padded batches equals one-by-one attribution, for every family,
mode, padding side and attention implementation; left padding is position-correct."""

from __future__ import annotations

import pytest
import torch
from conftest import FAMILIES, tiny_config, tiny_model

from shiftlens.attribution.core import attribute, attribute_many
from shiftlens.attribution.gradients import Padded, final_hidden, hidden_states
from shiftlens.errors import ShiftlensError


def _sequences(seed: int = 0) -> list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
    """Four sequences of different lengths, prompt sizes and response sizes; sources/targets not all sorted."""
    gen = torch.Generator().manual_seed(seed)
    shapes = [(14, [0, 2, 5, 1], [9, 6, 13, 7]), (9, [0, 1, 2], [3, 4, 8]), (17, list(range(8)), list(range(8, 17)))]
    shapes.append((11, [1, 0], [10, 2, 5]))
    return [(torch.randint(0, 96, (t,), generator=gen), torch.tensor(s), torch.tensor(g)) for t, s, g in shapes]


def _rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).abs().max() / b.abs().max())


def _model(family: str, attention: str) -> torch.nn.Module:
    if attention == "eager":
        return tiny_model(family)
    from transformers import AutoModelForCausalLM

    torch.manual_seed(0)
    return AutoModelForCausalLM.from_config(tiny_config(family), attn_implementation=attention).eval()


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("attention", ["eager", "sdpa"])
def test_batched_across_examples_equals_one_by_one(family: str, attention: str) -> None:
    model = _model(family, attention)
    sequences = _sequences()
    alone = [attribute(model, *s, mode="loop", chunk_size=2) for s in sequences]
    for mode in ("batched", "forward", "loop"):
        for padding in ("right", "left"):
            together = attribute_many(model, sequences, mode=mode, chunk_size=2, padding=padding)
            assert [t.shape for t in together] == [a.shape for a in alone]
            worst = max(_rel(t, a) for t, a in zip(together, alone))
            assert worst <= 1e-5, (mode, padding, worst)


def test_auto_across_examples_reports_one_plan_for_the_batch() -> None:
    model = tiny_model("llama")
    sequences = _sequences(1)
    plans = []
    together = attribute_many(model, sequences, padding="left", report=plans.append)
    assert len(plans) == 1 and plans[0].mode in ("batched", "forward") and plans[0].memory_ratio is not None
    for t, s in zip(together, sequences):
        assert _rel(t, attribute(model, *s)) <= 1e-5


def test_left_padding_needs_and_gets_explicit_positions() -> None:
    """Left-padded states equal the unpadded ones with `Padded`'s position ids; with the default ids they don't
    (GPT-2's learned absolute positions; rotary models would hide the shift, it cancels in q·k)."""
    model = tiny_model("gpt2")
    short, long = model.get_input_embeddings()(_sequences()[1][0]), model.get_input_embeddings()(_sequences()[2][0])
    batch = Padded.of([short, long], "left")
    assert batch.offsets.tolist() == [len(long) - len(short), 0] and batch.mask is not None
    assert batch.positions[0, batch.offsets[0] :].tolist() == list(range(len(short)))
    with torch.no_grad():
        padded = batch.hidden(model)
        default_positions = hidden_states(model, batch.embeds, batch.mask)
        alone = final_hidden(model, short)
    off = int(batch.offsets[0])
    assert _rel(padded[0, off:], alone) <= 1e-5
    assert _rel(padded[1], final_hidden(model, long).detach()) <= 1e-5
    assert _rel(default_positions[0, off:], alone) > 1e-2  # positions shifted by the padding


def test_right_padding_leaves_real_positions_alone() -> None:
    model = tiny_model("llama")
    short, long = model.get_input_embeddings()(_sequences()[1][0]), model.get_input_embeddings()(_sequences()[2][0])
    batch = Padded.of([short, long], "right")
    assert batch.offsets.tolist() == [0, 0] and batch.mask[0].tolist() == [1] * len(short) + [0] * 8
    with torch.no_grad():
        assert _rel(batch.hidden(model)[0, : len(short)], final_hidden(model, short)) <= 1e-5


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (dict(padding="middle"), "unknown padding 'middle'"),
        (dict(sequences=[]), "no sequences to attribute"),
        (dict(memory_budget=0.0), "memory_budget must be positive"),
        (dict(mode="fast"), "unknown mode 'fast'"),
    ],
)
def test_bad_batch_options_raise_clear_errors(kwargs: dict, message: str) -> None:
    args = dict(sequences=_sequences())
    args.update(kwargs)
    with pytest.raises(ShiftlensError, match=message):
        attribute_many(tiny_model("llama"), **args)


def test_a_bad_sequence_in_a_batch_is_named() -> None:
    sequences = _sequences()
    sequences[2] = (sequences[2][0], torch.tensor([0, 9]), sequences[2][2])
    with pytest.raises(ShiftlensError, match="source position 9 is not before the first target position 8"):
        attribute_many(tiny_model("llama"), sequences)
