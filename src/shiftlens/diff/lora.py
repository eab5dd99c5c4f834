"""A PEFT LoRA adapter read as low-rank updates ΔW = (alpha / r) · B · A per weight, without merging it."""

from __future__ import annotations

import json
from pathlib import Path

from safetensors import safe_open

from shiftlens.diff.delta import LowRank
from shiftlens.errors import ShiftlensError
from shiftlens.models.checks import resolve_adapter

PREFIX = "base_model.model."


class AdapterError(ShiftlensError, ValueError):
    """An adapter directory that cannot be read as LoRA updates of the model."""


def lora_updates(directory: str | Path) -> dict[str, LowRank]:
    """Per weight name of the base model (e.g. ``model.layers.0.self_attn.q_proj.weight``), its LoRA update.

    ``directory`` is a PEFT adapter directory or a built-in adapter name (``smollm2-lora-demo``)."""
    directory = resolve_adapter(str(directory))
    config_path, weights = directory / "adapter_config.json", directory / "adapter_model.safetensors"
    for path in (config_path, weights):
        if not path.is_file():
            raise AdapterError(f"{path} not found: is {directory} a PEFT LoRA adapter directory?")
    config = json.loads(config_path.read_text(encoding="utf-8"))
    if config.get("peft_type", "LORA") != "LORA":
        raise AdapterError(f"{directory} is a {config.get('peft_type')} adapter; only LoRA updates are read")
    rank, alpha = int(config["r"]), float(config.get("lora_alpha", config["r"]))
    scale = alpha / rank**0.5 if config.get("use_rslora") else alpha / rank
    factors: dict[str, dict[str, object]] = {}
    with safe_open(str(weights), framework="pt") as handle:
        for key in handle.keys():
            for side in ("lora_A", "lora_B"):
                marker = f".{side}."
                if marker in key:
                    module = key.split(marker)[0].removeprefix(PREFIX)
                    factors.setdefault(module + ".weight", {})[side] = handle.get_tensor(key)
    updates = {}
    for name, pair in factors.items():
        if set(pair) != {"lora_A", "lora_B"}:
            raise AdapterError(f"{weights}: {name} has only {', '.join(pair)}")
        updates[name] = LowRank(pair["lora_B"], pair["lora_A"], scale)  # type: ignore[arg-type]
    if not updates:
        raise AdapterError(f"{weights} holds no lora_A/lora_B tensors")
    return updates
