"""Model loading: local directories, PEFT adapters, GGUF caching, weight sources, one weight hash, devices."""

from __future__ import annotations

import pytest
import torch
from conftest import save_tiny_model

from shiftlens.models import (
    ModelLoadError,
    ModelSpec,
    ModuleWeights,
    SafetensorsWeights,
    compute_device,
    load_model,
    weight_hash,
    weight_source,
)
from shiftlens.models.fingerprint import file_fingerprint, weight_files


def test_local_directory_loads_frozen_in_eval_mode(tmp_path) -> None:
    model, _ = save_tiny_model(tmp_path)
    loaded = load_model(str(tmp_path))
    assert not loaded.model.training
    assert not any(p.requires_grad for p in loaded.model.parameters())
    torch.testing.assert_close(loaded.model.model.embed_tokens.weight, model.model.embed_tokens.weight)
    assert loaded.weights_dir == tmp_path and len(loaded.weight_hash) == 16
    assert loaded.manifest()["model_type"] == "llama"


def test_dtype_is_applied(tmp_path) -> None:
    save_tiny_model(tmp_path)
    assert load_model(str(tmp_path), dtype="bfloat16").model.dtype == torch.bfloat16


def test_peft_adapter_is_merged_into_the_base(tmp_path) -> None:
    peft = pytest.importorskip("peft")
    base, _ = save_tiny_model(tmp_path / "base")
    lora = peft.get_peft_model(base, peft.LoraConfig(r=2, target_modules=["q_proj"], init_lora_weights=False))
    lora.save_pretrained(tmp_path / "adapter")
    merged = lora.merge_and_unload()
    expected = merged.model.layers[0].self_attn.q_proj.weight.detach().clone()
    loaded = load_model(str(tmp_path / "base"), adapter=str(tmp_path / "adapter"))
    q_proj = loaded.model.model.layers[0].self_attn.q_proj.weight
    torch.testing.assert_close(q_proj, expected)
    assert loaded.manifest()["adapter"] == str(tmp_path / "adapter")


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"dtype": "float8"}, "unknown dtype 'float8'"),
        ({"device": "tpu"}, "unknown device 'tpu'"),
    ],
)
def test_bad_settings_are_clear_errors(tmp_path, kwargs, message) -> None:
    with pytest.raises(ModelLoadError, match=message):
        load_model(str(tmp_path), **kwargs)


def test_missing_model_is_a_clear_error(tmp_path) -> None:
    with pytest.raises(ModelLoadError, match="nowhere.*no such file or directory"):
        load_model(str(tmp_path / "nowhere"))


def test_remote_code_models_need_the_flag(tmp_path) -> None:
    save_tiny_model(tmp_path)
    config = (tmp_path / "config.json").read_text()
    (tmp_path / "config.json").write_text(
        config.replace(
            '"model_type": "llama"',
            '"model_type": "custom_remote", "auto_map": {"AutoConfig": "configuration_custom.CustomConfig"}',
        )
    )
    with pytest.raises(ModelLoadError, match="--trust-remote-code"):
        load_model(str(tmp_path))


def test_streamed_and_loaded_directories_get_one_weight_hash(tmp_path) -> None:
    """A .bin beside the safetensors (as in many hub repos): heads (streamed) and load_model record one hash."""
    model, _ = save_tiny_model(tmp_path)
    torch.save(model.state_dict(), tmp_path / "pytorch_model.bin")
    safetensors = [tmp_path / "model.safetensors"]
    assert weight_files(tmp_path) == safetensors  # the files transformers and the streaming reader read
    streamed = weight_source(str(tmp_path))
    assert isinstance(streamed.weights, SafetensorsWeights)
    assert streamed.identity["weight_hash"] == load_model(str(tmp_path)).weight_hash == file_fingerprint(safetensors)
    assert weight_source(ModelSpec(str(tmp_path))).identity == streamed.identity


def test_a_bin_checkpoint_is_loaded_and_hashed_by_its_bin_files(tmp_path) -> None:
    model, _ = save_tiny_model(tmp_path)
    torch.save(model.state_dict(), tmp_path / "pytorch_model.bin")
    (tmp_path / "model.safetensors").unlink()
    opened = weight_source(str(tmp_path))
    assert isinstance(opened.weights, ModuleWeights)
    assert opened.identity["weight_hash"] == weight_hash(tmp_path) == file_fingerprint([tmp_path / "pytorch_model.bin"])
    name = "model.layers.0.self_attn.q_proj.weight"
    torch.testing.assert_close(opened.weights.get(name), model.get_parameter(name))


def test_a_loaded_model_is_read_from_its_files_unless_an_adapter_changed_it(tmp_path) -> None:
    save_tiny_model(tmp_path)
    loaded = load_model(str(tmp_path))
    opened = weight_source(loaded)
    assert isinstance(opened.weights, SafetensorsWeights) and opened.identity == loaded.manifest()
    name = "model.layers.1.mlp.down_proj.weight"
    torch.testing.assert_close(opened.weights.get(name), loaded.model.get_parameter(name))
    loaded.extra["adapter"] = str(tmp_path / "adapter")  # merged weights differ from the files
    assert isinstance(weight_source(loaded).weights, ModuleWeights)


@pytest.mark.parametrize("cuda", [False, True])
def test_devices_are_resolved_in_one_place(monkeypatch, cuda) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: cuda)
    assert compute_device("auto") == ("cuda" if cuda else "cpu")
    assert compute_device("cpu") == "cpu"
    with pytest.raises(ModelLoadError, match="unknown device 'tpu'"):
        compute_device("tpu")
    if cuda:
        assert compute_device("cuda:1") == "cuda:1"
    else:
        with pytest.raises(ModelLoadError, match="'cuda:1' asked for but CUDA is not available"):
            compute_device("cuda:1")
        with pytest.raises(ModelLoadError, match="CUDA is not available"):
            load_model("organism-base", device="cuda")


@pytest.mark.slow
def test_packaged_gguf_is_cached_as_safetensors(smollm2) -> None:
    assert (smollm2.weights_dir / "model.safetensors").exists()
    assert "quantization_config" not in (smollm2.weights_dir / "config.json").read_text()
    assert smollm2.model.config.num_hidden_layers == 30
    assert smollm2.tokenizer.chat_template
    again = load_model("smollm2")
    assert again.weights_dir == smollm2.weights_dir and again.weight_hash == smollm2.weight_hash
