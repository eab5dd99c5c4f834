"""`shiftlens diff` on pairs that cannot be compared weight by weight (issue 17): one line naming the tensor, exit 2."""

from __future__ import annotations

import pyarrow.parquet as pq
import pytest
import torch
from conftest import tiny_model, tiny_tokenizer
from safetensors.torch import load_file, save_file

from shiftlens.cli.main import main


def save(directory, **overrides):
    """A tiny Llama with the tiny tokenizer, saved as a model directory (``overrides``: its config)."""
    tokenizer = tiny_tokenizer()
    overrides = {"vocab_size": len(tokenizer), **overrides}
    model = tiny_model("llama", bos_token_id=0, eos_token_id=1, **overrides)
    model.save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    return model


def diff(capsys, *argv) -> tuple[int, str]:
    """Exit code and what went to stderr but the log's info lines; an error is then its one line."""
    capsys.readouterr()
    code = main(["diff", *map(str, argv), "--weights-only"])
    lines = [line for line in capsys.readouterr().err.splitlines() if not line.startswith("device:")]
    return code, "\n".join(lines)


def test_other_shapes_are_refused_by_tensor_unless_allowed(tmp_path, capsys) -> None:
    save(tmp_path / "a")
    save(tmp_path / "wide", hidden_size=64)
    code, err = diff(capsys, tmp_path / "a", tmp_path / "wide", "--out", tmp_path / "o1")
    assert code == 2 and len(err.splitlines()) == 1
    assert "model.embed_tokens.weight: base (" in err and "--allow-different-shapes" in err
    save(tmp_path / "vocab", vocab_size=120)  # only the embeddings differ
    code, err = diff(capsys, tmp_path / "a", tmp_path / "vocab", "--out", tmp_path / "o2", "--allow-different-shapes")
    assert code == 0 and "model.embed_tokens.weight left out of the weight map" in err
    modules = set(pq.read_table(tmp_path / "o2" / "weights.parquet").column("module").to_pylist())
    assert "embed" not in modules and {"q", "down", "final_norm"} <= modules
    code, err = diff(capsys, tmp_path / "a", tmp_path / "wide", "--out", tmp_path / "o3", "--allow-different-shapes")
    assert code == 2 and "no tensor has the same shape in both checkpoints" in err


def test_a_layer_missing_from_one_checkpoint_is_named_before_any_work(tmp_path, capsys) -> None:
    save(tmp_path / "a")
    save(tmp_path / "b", seed=1)
    weights = tmp_path / "b" / "model.safetensors"
    tensors = load_file(str(weights))
    del tensors["model.layers.1.mlp.up_proj.weight"]
    save_file(tensors, str(weights), metadata={"format": "pt"})
    code, err = diff(capsys, tmp_path / "a", tmp_path / "b", "--out", tmp_path / "o")
    assert code == 2 and len(err.splitlines()) == 1
    assert "model.layers.1.mlp.up_proj.weight is missing from the tuned checkpoint" in err
    assert not (tmp_path / "o" / "weights.parquet").exists()
    save(tmp_path / "deeper", num_hidden_layers=3)
    code, err = diff(capsys, tmp_path / "a", tmp_path / "deeper", "--out", tmp_path / "o")
    assert code == 2 and "the tuned checkpoint has model.layers.2." in err and "beyond the base's 2 layers" in err


@pytest.mark.filterwarnings("ignore::FutureWarning")
def test_an_adapter_of_another_base_is_refused_by_tensor(tmp_path, capsys) -> None:
    from peft import LoraConfig, get_peft_model

    save(tmp_path / "a")
    other = get_peft_model(tiny_model("llama", hidden_size=64), LoraConfig(r=2, target_modules=["q_proj"]))
    for name, parameter in other.named_parameters():
        if "lora_B" in name:
            parameter.data = torch.ones_like(parameter)
    other.save_pretrained(tmp_path / "adapter")
    code, err = diff(
        capsys, tmp_path / "a", tmp_path / "a", "--tuned-adapter", tmp_path / "adapter", "--out", tmp_path / "o"
    )
    assert code == 2 and len(err.splitlines()) == 1
    assert "the adapter's model.layers.0.self_attn.q_proj.weight is 32×64, the model's (32, 32)" in err
