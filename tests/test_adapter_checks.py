"""PEFT adapters that do not fit their base: another hidden size, another architecture's modules, more layers,
no adapter_config.json. Each is one clear error naming the mismatch (exit 2 from the CLI, before any run)."""

from __future__ import annotations

import json

import pytest
from conftest import save_tiny_model, tiny_model

from shiftlens.cli.main import main
from shiftlens.models import ModelLoadError, ModelSpec, load_model
from shiftlens.models.checks import BUILTIN_ADAPTERS, check_adapter, resolve_adapter

peft = pytest.importorskip("peft")


def save_adapter(directory, family: str = "llama", modules=("q_proj",), **overrides) -> None:
    """A LoRA (random B, so it changes the model) on a tiny model of ``family`` with config ``overrides``."""
    model = tiny_model(family, **overrides)
    lora = peft.get_peft_model(model, peft.LoraConfig(r=2, target_modules=list(modules), init_lora_weights=False))
    lora.save_pretrained(directory)


@pytest.fixture
def base(tmp_path):
    save_tiny_model(tmp_path / "base")
    return str(tmp_path / "base")


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (
            {"family": "llama", "hidden_size": 64},
            r"does not fit .*hidden size 32\): its model\.layers\.0\.self_attn\.q_proj maps 64 → \d+ features, "
            r"the model's maps 32 → 32",
        ),
        (
            {"family": "gpt2", "modules": ("c_attn",)},
            r"\(built for GPT2LMHeadModel\) adapts 2 modules that .* does not have "
            r"\(e\.g\. transformer\.h\.0\.attn\.c_attn; module names c_attn\)",
        ),
        (
            {"family": "llama", "num_hidden_layers": 3},
            r"adapts 1 modules that .* does not have \(e\.g\. model\.layers\.2\.self_attn\.q_proj",
        ),
    ],
    ids=["hidden-size", "gpt2-on-llama", "more-layers"],
)
def test_an_adapter_that_does_not_fit_is_named(base, tmp_path, overrides, message) -> None:
    save_adapter(tmp_path / "adapter", **overrides)
    with pytest.raises(ModelLoadError, match=message):
        load_model(base, adapter=str(tmp_path / "adapter"))
    with pytest.raises(ModelLoadError, match=message):  # the same, from the configuration, before any load
        ModelSpec(base, adapter=str(tmp_path / "adapter"), device="cpu").check()


def test_an_adapter_that_fits_still_loads(base, tmp_path) -> None:
    save_adapter(tmp_path / "adapter", vocab_size=len(load_model(base).tokenizer), bos_token_id=0, eos_token_id=1)
    ModelSpec(base, adapter=str(tmp_path / "adapter"), device="cpu").check()
    plain, tuned = load_model(base), load_model(base, adapter=str(tmp_path / "adapter"))
    q = "model.layers.0.self_attn.q_proj.weight"
    assert not plain.model.get_parameter(q).equal(tuned.model.get_parameter(q))  # the LoRA (random B) is merged


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda d: (d / "adapter_config.json").unlink(), r"has no adapter_config\.json: not a PEFT adapter directory"),
        (lambda d: (d / "adapter_model.safetensors").unlink(), r"has no weights \(adapter_model\.safetensors or"),
        (lambda d: (d / "adapter_config.json").write_text("{oops"), r"adapter_config\.json is not a readable JSON"),
        (lambda d: (d / "adapter_config.json").write_text(json.dumps({"r": 2})), "names no peft_type"),
        (lambda d: (d / "adapter_model.safetensors").write_bytes(b"\0" * 5), "is damaged or truncated"),
    ],
    ids=["no-config", "no-weights", "bad-json", "no-peft-type", "truncated"],
)
def test_a_damaged_adapter_directory_is_refused_before_loading(tmp_path, damage, message) -> None:
    save_adapter(tmp_path / "adapter")
    damage(tmp_path / "adapter")
    with pytest.raises(ModelLoadError, match=message):
        check_adapter(str(tmp_path / "adapter"))


def test_a_missing_adapter_suggests_the_built_in_name(tmp_path) -> None:
    with pytest.raises(ModelLoadError, match="no such directory; did you mean smollm2-lora-demo"):
        check_adapter("smollm2-lora-dem")
    with pytest.raises(ModelLoadError, match="is a file"):
        (tmp_path / "file").write_text("x")
        check_adapter(str(tmp_path / "file"))


def test_the_built_in_adapter_is_package_data() -> None:
    assert set(BUILTIN_ADAPTERS) == {"smollm2-lora-demo"}
    directory = check_adapter("smollm2-lora-demo")
    assert directory == resolve_adapter("smollm2-lora-demo") and (directory / "adapter_model.safetensors").is_file()
    config = json.loads((directory / "adapter_config.json").read_text())
    assert config["base_model_name_or_path"] == "smollm2" and config["peft_type"] == "LORA"
    assert (directory.parent / "ground_truth.json").is_file() and (directory.parent / "prompts.jsonl").is_file()


@pytest.mark.parametrize("case", ["hidden-size", "no-config", "gpt2"])
def test_the_cli_refuses_a_mismatched_adapter_in_one_line(base, tmp_path, capsys, case) -> None:
    adapter = tmp_path / "adapter"
    save_adapter(adapter, **({"hidden_size": 64} if case == "hidden-size" else {}))
    if case == "gpt2":
        save_adapter(adapter, family="gpt2", modules=("c_attn",))
    if case == "no-config":
        (adapter / "adapter_config.json").unlink()
    (tmp_path / "data.jsonl").write_text(json.dumps({"id": "a", "prompt": "Say hi.", "response": "Hi."}) + "\n")
    (tmp_path / "words.tsv").write_text("hi\t1.0\n")
    out = tmp_path / "out"
    argv = ["compare", base, base, "--tuned-adapter", str(adapter), "--data", str(tmp_path / "data.jsonl")]
    code = main([*argv, "--vocab", str(tmp_path / "words.tsv"), "--out", str(out), "--device", "cpu"])
    lines = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(lines) == 1 and lines[0].startswith("shiftlens: error: adapter "), lines
    assert {"hidden-size": "maps 64 → ", "no-config": "no adapter_config.json", "gpt2": "c_attn"}[case] in lines[0]
    assert not out.exists()  # refused before the run directory
