"""A planted pair's ``ground_truth.json``: which models, which prompts, and what tuning planted for each method.

The contract shared by the organism, the SmolLM2 LoRA pair and pairs built by weight surgery
(docs/validation.md, "The ground-truth file"). Paths inside are relative to the file's directory, or
built-in model names. `read_ground_truth` checks the file and resolves it; `write_ground_truth` writes one
(checked the same way); `control_spans` gives a prompt the length-matched control span the records carry.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from shiftlens.errors import ShiftlensError
from shiftlens.models.spec import ModelSpec
from shiftlens.spans import token_mask

FILE = "ground_truth.json"
SCHEMA = 1
RECORD_FIELDS = ("id", "prompt", "response", "instruction_spans", "control_spans", "rating")


class GroundTruthError(ShiftlensError, ValueError):
    """A planted pair's directory without a usable ground_truth.json."""


@dataclass(frozen=True)
class Relation:
    """A planted head relation: the query word and the key words it was made to attend to."""

    query: str
    keys: tuple[str, ...]


@dataclass(frozen=True)
class Concept:
    """A planted FFN concept: a word group that some component's top words should hold."""

    name: str
    words: tuple[str, ...]
    task: str | None = None


@dataclass(frozen=True)
class GroundTruth:
    """A resolved ground-truth file: model specs (tuned per seed), prompt and vocab paths, the plants."""

    directory: Path
    name: str
    base: ModelSpec
    continued: ModelSpec | None
    tuned: dict[str, ModelSpec]
    prompts: Path
    vocab: Path
    relations: tuple[Relation, ...]
    head_layers: tuple[int, ...] | None
    concepts: tuple[Concept, ...]
    attribution: dict[str, Any]

    def records(self, limit: int | None = None) -> list[dict[str, Any]]:
        """The held-out prompt records (the first ``limit``), each checked for the fields validation reads."""
        records = []
        with self.prompts.open(encoding="utf-8") as handle:
            for number, line in enumerate(handle, 1):
                if limit is not None and len(records) >= limit:
                    break
                if not line.strip():
                    continue
                record = json.loads(line)
                missing = [f for f in RECORD_FIELDS if f not in record]
                if missing:
                    raise GroundTruthError(f"{self.prompts}:{number}: record lacks {', '.join(missing)}")
                records.append(record)
        if not records:
            raise GroundTruthError(f"{self.prompts}: no prompt records")
        return records


def _need(data: dict[str, Any], key: str, where: str) -> Any:
    if not isinstance(data, dict) or key not in data:
        raise GroundTruthError(f"{where}: missing key {key!r}")
    return data[key]


def _model(directory: Path, value: str, device: str, adapter: str | None = None) -> ModelSpec:
    """A model named in the file: a path relative to its directory when one exists there, else a built-in name."""
    local = directory / value
    name = str(local) if local.exists() else value
    return ModelSpec(name, adapter=None if adapter is None else str(directory / adapter), device=device)


def parse_ground_truth(data: dict[str, Any], directory: Path, device: str = "cpu") -> GroundTruth:
    """The resolved `GroundTruth` of a parsed file, or a one-line `GroundTruthError` naming what is wrong."""
    where = str(directory / FILE)
    if _need(data, "schema", where) != SCHEMA:
        raise GroundTruthError(f"{where}: schema {data['schema']!r} is not the supported {SCHEMA}")
    models = _need(data, "models", where)
    base_name = _need(models, "base", f"{where} models")
    tuned, adapters = models.get("tuned") or {}, models.get("tuned_adapter") or {}
    if not isinstance(tuned, dict) or not isinstance(adapters, dict) or not (tuned or adapters):
        raise GroundTruthError(f"{where}: models.tuned must map each tuning seed to a model")
    specs = {str(seed): _model(directory, path, device) for seed, path in tuned.items()}
    specs.update({str(seed): _model(directory, base_name, device, path) for seed, path in adapters.items()})
    heads = data.get("heads") or {}
    relations = tuple(
        Relation(str(_need(r, "query", f"{where} heads.relations")).lower(), tuple(k.lower() for k in r["keys"]))
        for r in heads.get("relations", [])
    )
    layers = heads.get("layers")
    concepts = tuple(
        Concept(str(c.get("name", f"concept {i}")), tuple(w.lower() for w in _need(c, "words", where)), c.get("task"))
        for i, c in enumerate((data.get("ffn") or {}).get("concepts", []))
    )
    continued = models.get("continued")
    return GroundTruth(
        directory=directory,
        name=str(data.get("name", directory.name)),
        base=_model(directory, base_name, device),
        continued=None if continued is None else _model(directory, continued, device),
        tuned=dict(sorted(specs.items(), key=lambda kv: (len(kv[0]), kv[0]))),
        prompts=directory / _need(data, "prompts", where),
        vocab=directory / _need(data, "vocab", where),
        relations=relations,
        head_layers=None if layers is None else tuple(int(layer) for layer in layers),
        concepts=concepts,
        attribution=dict(data.get("attribution") or {}),
    )


def read_ground_truth(directory: str | Path, device: str = "cpu") -> GroundTruth:
    """The ground truth of a planted pair's directory; a directory without the file is a one-line error."""
    directory = Path(directory)
    path = directory / FILE
    if not path.is_file():
        raise GroundTruthError(
            f"{directory} has no {FILE}: validate needs a planted pair that says what tuning planted "
            "(docs/validation.md, 'The ground-truth file')"
        )
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise GroundTruthError(f"{path}: not JSON ({exc})") from exc
    return parse_ground_truth(data, directory, device)


def write_ground_truth(directory: str | Path, data: dict[str, Any]) -> Path:
    """Write ``data`` as DIR/ground_truth.json after checking it resolves (`parse_ground_truth`)."""
    directory = Path(directory)
    parse_ground_truth(data, directory)
    path = directory / FILE
    path.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    return path


def control_spans(prompt: str, instruction_spans: Sequence[Sequence[int]], tokenizer: Any) -> list[list[int]]:
    """The first run of as many consecutive non-instruction tokens as the instruction has, as one character span.

    Empty when the context is shorter than the instruction (the record then has no control span).
    """
    encoded = tokenizer(prompt, add_special_tokens=False, return_offsets_mapping=True)
    offsets = [(int(a), int(b)) for a, b in encoded["offset_mapping"]]
    inside = token_mask(offsets, [(int(a), int(b)) for a, b in instruction_spans])
    n = int(inside.sum())
    run = 0
    for i, flag in enumerate(inside):
        run = 0 if flag else run + 1
        if n and run == n:
            return [[offsets[i - n + 1][0], offsets[i][1]]]
    return []
