"""Shared fixtures: the paper's released data, tiny models of each family, the packaged SmolLM2."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
PAPER_DATA = Path(os.environ.get("SHIFTLENS_PAPER_DATA", REPO.parent / "shared" / "paper-data"))

os.environ.setdefault("SHIFTLENS_NO_PROGRESS", "1")


@pytest.fixture(scope="session")
def paper_data() -> Path:
    """The authors' released data (../shared/paper-data); tests needing it skip when it is absent."""
    if not (PAPER_DATA / "datasets" / "FinalDataset.tsv").exists():
        pytest.skip(f"paper data not found at {PAPER_DATA} (set SHIFTLENS_PAPER_DATA)")
    return PAPER_DATA


@pytest.fixture(autouse=True)
def _hub_offline_restored():
    """Restore huggingface_hub's offline switch, which a load from the hub cache without a hub turns on."""
    from huggingface_hub import constants

    offline = constants.HF_HUB_OFFLINE
    yield
    constants.HF_HUB_OFFLINE = offline


@pytest.fixture(scope="session")
def organism_ffn_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A finished FFN run of organism-base's first layer (for `shiftlens annotate` tests)."""
    from shiftlens import organism
    from shiftlens.ffn.pipeline import explain_ffn
    from shiftlens.ffn.settings import FfnSettings

    out = tmp_path_factory.mktemp("ffn") / "run"
    return explain_ffn("organism-base", organism.vocab_path(), out, FfnSettings(layers=(0,)))


def tiny_config(family: str, **overrides):
    """A tiny config of a supported family (random weights), small enough for exact tests."""
    import transformers

    common = dict(vocab_size=96, num_hidden_layers=2, hidden_size=32, intermediate_size=48, num_attention_heads=4)
    configs = {
        "llama": lambda: transformers.LlamaConfig(**common, num_key_value_heads=2),
        "mistral": lambda: transformers.MistralConfig(**common, num_key_value_heads=2, sliding_window=None),
        "qwen2": lambda: transformers.Qwen2Config(**common, num_key_value_heads=2),
        "gemma": lambda: transformers.GemmaConfig(**common, num_key_value_heads=1, head_dim=8),
        "phi": lambda: transformers.PhiConfig(**common),
        "gpt_neox": lambda: transformers.GPTNeoXConfig(**common),
        "gpt2": lambda: transformers.GPT2Config(
            vocab_size=96, n_layer=2, n_embd=32, n_head=4, bos_token_id=0, eos_token_id=0
        ),
    }
    config = configs[family]()
    for key, value in overrides.items():
        setattr(config, key, value)
    return config


FAMILIES = ("llama", "mistral", "qwen2", "gemma", "phi", "gpt_neox", "gpt2")


def tiny_model(family: str, seed: int = 0, attention: str = "eager", **overrides):
    """A tiny randomly initialised causal LM of a family, float32, eval mode, frozen (``attention``: eager or
    sdpa, PyTorch's fused attention, the default of real models such as SmolLM2)."""
    from transformers import AutoModelForCausalLM

    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_config(tiny_config(family, **overrides), attn_implementation=attention)
    model.eval().requires_grad_(False)
    return model


@pytest.fixture(scope="session")
def smollm2():
    """The packaged SmolLM2-135M-Instruct (GGUF, dequantized and cached on first use)."""
    from shiftlens.models import load_model

    return load_model("smollm2")


TOKENIZER_TEXT = [
    "Summarize the following text in one sentence.",
    "Write a short poem about the sea, then explain it.",
    "Translate into French: the cat sleeps on the mat.",
    "Give a synonym of happy. Define the word river.",
] * 20


def tiny_tokenizer():
    """A byte-level BPE fast tokenizer (320 tokens) trained in code, with BOS/EOS and offsets."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=320, special_tokens=["<s>", "</s>"], initial_alphabet=pre_tokenizers.ByteLevel.alphabet()
    )
    tok.train_from_iterator(TOKENIZER_TEXT, trainer)
    return PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<s>", eos_token="</s>")


def save_tiny_model(directory, family: str = "llama", seed: int = 0):
    """Save a tiny model of a family with a matching tiny tokenizer as a loadable model directory."""
    tokenizer = tiny_tokenizer()
    model = tiny_model(family, seed=seed, vocab_size=len(tokenizer), bos_token_id=0, eos_token_id=1)
    model.save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    return model, tokenizer


@pytest.fixture
def counted(monkeypatch):
    """Ids of the sequences the numerical attribution core is called on (the expensive part)."""
    from shiftlens.attribution import core

    calls = []
    real = core.attribute

    def counting(*args, **kwargs):
        calls.append(args[1])
        return real(*args, **kwargs)

    monkeypatch.setattr(core, "attribute", counting)
    return calls
