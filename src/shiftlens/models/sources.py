"""Weight sources for the architecture map: a loaded model, or safetensors shards read lazily.

Reading shards by name lets the heads and FFN methods hold one layer at a time, so a 7B model needs
little more memory than its embeddings plus one layer. `weight_source` is the one way to open them.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, NamedTuple

import torch
from safetensors import safe_open

from shiftlens.architecture import spec_for
from shiftlens.models.files import local_source
from shiftlens.models.fingerprint import tokenizer_fingerprint, weight_hash
from shiftlens.models.load import LoadedModel, load_config, load_tokenizer
from shiftlens.models.spec import ModelSpec


class ModuleWeights:
    """Parameters of an in-memory model, by state-dict name (tied weights included)."""

    def __init__(self, model: torch.nn.Module) -> None:
        self._tensors = dict(model.state_dict(keep_vars=True))
        self.config = model.config

    def has(self, name: str) -> bool:
        return name in self._tensors

    def get(self, name: str) -> torch.Tensor:
        if name not in self._tensors:
            raise KeyError(f"model has no parameter {name!r}")
        return self._tensors[name].detach()


class SafetensorsWeights:
    """Tensors of a model directory's safetensors files, each read from disk only when asked for.

    Checkpoints saved by the base model class (GPT-2's ``h.0...`` instead of ``transformer.h.0...``)
    are matched by also trying each name without its first component.
    """

    def __init__(self, directory: str | Path, config: object) -> None:
        self.directory = Path(directory)
        self.config = config
        index = self.directory / "model.safetensors.index.json"
        if index.exists():
            mapping = json.loads(index.read_text())["weight_map"]
            self._where = {name: self.directory / shard for name, shard in mapping.items()}
        else:
            files = sorted(self.directory.glob("*.safetensors"))
            if not files:
                raise FileNotFoundError(f"no .safetensors files in {self.directory}")
            self._where = {}
            for file in files:
                with safe_open(str(file), framework="pt") as handle:
                    self._where.update({name: file for name in handle.keys()})

    def _resolve(self, name: str) -> str | None:
        if name in self._where:
            return name
        short = name.split(".", 1)[-1]
        return short if short in self._where else None

    def has(self, name: str) -> bool:
        return self._resolve(name) is not None

    def get(self, name: str) -> torch.Tensor:
        key = self._resolve(name)
        if key is None:
            raise KeyError(f"no tensor {name!r} in {self.directory}")
        with safe_open(str(self._where[key]), framework="pt") as handle:
            return handle.get_tensor(key)


class OpenedWeights(NamedTuple):
    """A model's per-tensor reader with its config, tokenizer and manifest identity (name, weight_hash, ...)."""

    weights: ModuleWeights | SafetensorsWeights
    config: Any
    tokenizer: Any
    identity: dict[str, Any]


def weight_source(
    model: ModelSpec | str | LoadedModel,
    *,
    gguf_file: str | None = None,
    adapter: str | None = None,
    trust_remote_code: bool = False,
) -> OpenedWeights:
    """Open a model's weights per tensor, from its safetensors files whenever it has them.

    A loaded model is read from its ``weights_dir`` (else from memory); a name, path or spec that
    resolves to a local safetensors directory is opened without building the model; hub ids, ``.bin``
    checkpoints and adapters are loaded (`ModelSpec.load`). The keyword options apply to a name only.
    """
    if isinstance(model, LoadedModel):
        config = model.model.config
        weights_dir = None if model.extra.get("adapter") else model.weights_dir
        reader = SafetensorsWeights(weights_dir, config) if weights_dir else ModuleWeights(model.model)
        return OpenedWeights(reader, config, model.tokenizer, model.manifest())
    if not isinstance(model, ModelSpec):
        model = ModelSpec(model, gguf_file=gguf_file, adapter=adapter, trust_remote_code=trust_remote_code)
    directory = Path(local_source(model.name, model.gguf_file)[0])
    if model.adapter is None and directory.is_dir() and any(directory.glob("*.safetensors")):
        config = load_config(directory, trust_remote_code=model.trust_remote_code)
        tokenizer = load_tokenizer(str(directory), trust_remote_code=model.trust_remote_code)
        spec_for(config)  # unsupported families fail here, before any work
        identity = {
            "name": model.name,
            "weight_hash": weight_hash(directory),
            "model_type": config.model_type,
            "tokenizer_sha256": tokenizer_fingerprint(tokenizer),
        }
        return OpenedWeights(SafetensorsWeights(directory, config), config, tokenizer, identity)
    return weight_source(model.load())
