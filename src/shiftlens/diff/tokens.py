"""Per-token divergence of a base/tuned pair as a resumable run: one unit per example, then ``tokens.parquet``.

Both models are teacher-forced on the same ids: the prompt in the tuned model's chat template, then the
example's response (the data's, or the tuned model's greedy reply), so the statistics of
`shiftlens.diff.divergence` and both models' logit lens (`shiftlens.diff.lens`) cost one forward per model
per example. Beside KL(tuned ‖ base) stands its null, KL(null ‖ base) on the same tokens, where the null
model is the base with every parameter moved by `shiftlens.nulls.perturb_like` noise of the tuning's size
(row by row, seeded): the same null as the weight map's, at one more forward per example. Both models (and
the null) are held at once here (the weight map never holds more than two tensors).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import torch

from shiftlens.atomic import atomic_write_json, atomic_write_parquet
from shiftlens.diff.divergence import response_logits, token_divergence
from shiftlens.diff.lens import formation_layer, read_forward
from shiftlens.errors import ShiftlensError
from shiftlens.examples import Example
from shiftlens.models import LoadedModel
from shiftlens.nulls import perturbed_module
from shiftlens.prompting import build_sequence, chat_format, generate
from shiftlens.runs import Job, Unit, UnitData, model_key
from shiftlens.runs.lifecycle import unit_file_name
from shiftlens.storage import RunDirectory, Shard

RUN_KIND = "diff-tokens"
TOKENS_FILE, SUMMARY_FILE = "tokens.parquet", "summary.json"
POSITION_BINS = 10  # the summary's relative positions in the response: tenths
TOP_TOKENS = 20  # the summary's most disagreeing tokens
COLUMNS = ("kl", "p_base", "p_tuned", "rank_base", "rank_tuned", "formation_base", "formation_tuned")
NULL_COLUMN = "kl_null"  # KL(null ‖ base): the base moved by noise of the tuning's size
GROWING = ("example_ids", "example_sha256")  # more examples extend a run


class TokenizerMismatch(ShiftlensError, ValueError):
    """Two models whose vocabularies differ: their distributions over tokens cannot be compared."""


def null_model(base: torch.nn.Module, tuned: torch.nn.Module, seed: int) -> torch.nn.Module:
    """The base moved by noise of the tuning's size (`shiftlens.nulls.perturbed_module`), seeded by ``seed``."""
    return perturbed_module(base, tuned, torch.Generator().manual_seed(seed))


def example_sha256(example: Example) -> str:
    """A short hash of what the models are forced on: the prompt and the data's response (if any)."""
    return hashlib.sha256(f"{example.prompt}\0{example.response}".encode()).hexdigest()[:12]


def _check_vocabularies(base: Any, tuned: Any) -> None:
    if base.get_vocab() != tuned.get_vocab():
        raise TokenizerMismatch(
            f"the two tokenizers differ ({len(base)} vs {len(tuned)} tokens, or other ids): "
            "per-token divergence needs one vocabulary"
        )


class TokensJob(Job):
    """The per-token divergence run of two loaded models over some examples."""

    kind, noun = RUN_KIND, "example"

    def __init__(
        self,
        base: LoadedModel,
        tuned: LoadedModel,
        examples: Sequence[Example],
        max_new_tokens: int = 200,
        null_seed: int | None = 0,
    ) -> None:
        _check_vocabularies(base.tokenizer, tuned.tokenizer)
        self.base, self.tuned, self.max_new_tokens, self.null_seed = base, tuned, max_new_tokens, null_seed
        self.examples = {e.id: e for e in examples}
        self.fmt = chat_format(tuned.tokenizer, "auto", tuned.model)
        self.null: torch.nn.Module | None = None
        self.params = {
            "models": {"base": model_key(base.manifest()), "tuned": model_key(tuned.manifest())},
            "max_new_tokens": max_new_tokens,
            "null_seed": null_seed,
            "example_ids": list(self.examples),
            "example_sha256": [example_sha256(e) for e in examples],
        }
        self.info = {"model": {"base": base.manifest(), "tuned": tuned.manifest()}}

    def units(self) -> list[Unit]:
        """One unit per example."""
        return [Unit(unit_file_name(i), i) for i in self.examples]

    def open(self, out: Path, shard: Shard | None = None, force: bool = False) -> RunDirectory:
        """The run directory; a longer list of examples extends a stored run."""
        return RunDirectory(out, self.kind, self.params, self.info, shard=shard, force=force, growing=GROWING)

    def prepare(self, todo: Sequence[Unit]) -> None:
        """The null model, built only when some example is still to be computed."""
        if self.null_seed is not None and self.null is None:
            self.null = null_model(self.base.model, self.tuned.model, self.null_seed)

    def compute(self, unit: Unit) -> UnitData:
        """Both models' logits on the example's ids, and the statistics of every response token."""
        example, tokenizer = self.examples[unit.key], self.tuned.tokenizer
        response, source = example.response, "data"
        if response is None:
            response = generate(self.tuned.model, self.fmt, tokenizer, example.prompt, self.max_new_tokens, example.id)
            source = "generated"
        seq = build_sequence(self.tuned.model, self.fmt, tokenizer, example.prompt, response, example.id)
        ids, positions = seq.input_ids, seq.response_positions
        base, tuned = read_forward(self.base.model, ids, positions), read_forward(self.tuned.model, ids, positions)
        arrays = token_divergence(base.logits, tuned.logits, ids[positions]).arrays()
        for role, reading in (("base", base), ("tuned", tuned)):
            arrays[f"lens_probability_{role}"] = reading.lens_probability
            arrays[f"lens_rank_{role}"] = reading.lens_rank
            arrays[f"formation_{role}"] = formation_layer(reading.lens_rank)
        if self.null is not None:
            null_logits = response_logits(self.null, ids, positions)
            arrays[NULL_COLUMN] = token_divergence(base.logits, null_logits, ids[positions]).kl
        meta = {"id": example.id, "response": response, "source": source, "tokens": seq.response.tokens}
        return meta, {name: value.numpy() for name, value in arrays.items()}

    def finish(self, run: RunDirectory, failed: dict[str, str]) -> None:
        """``tokens.parquet`` (one row per response token) and ``summary.json``."""
        rows: dict[str, list[Any]] = {"id": [], "position": [], "relative_position": [], "token": []}
        columns = (*COLUMNS, NULL_COLUMN) if self.null_seed is not None else COLUMNS
        rows.update({name: [] for name in columns})
        per_example, lens = [], {"base": [], "tuned": []}
        stored = set(run.unit_names())
        for unit in self.units():
            if unit.name not in stored:  # failed: listed in the summary
                continue
            meta, arrays = run.read_unit(unit.name)  # checked against its checksum here, once
            n = len(meta["tokens"])
            rows["id"] += [meta["id"]] * n
            rows["position"] += list(range(n))
            rows["relative_position"] += [p / max(n - 1, 1) for p in range(n)]
            rows["token"] += meta["tokens"]
            for name in columns:
                rows[name] += arrays[name].tolist()
            means = {f"mean_{name}": float(arrays[name].mean()) for name in columns if name.startswith("kl")}
            per_example.append({"id": meta["id"], **means, "tokens": n})
            for role in lens:
                lens[role].append(arrays[f"lens_probability_{role}"])
        atomic_write_parquet(run.path / TOKENS_FILE, pa.table(rows))
        result = summary(rows, per_example, failed)
        result["logit_lens"] = lens_summary(rows, lens)
        atomic_write_json(run.path / SUMMARY_FILE, result)


def summary(rows: dict[str, list[Any]], per_example: list[dict[str, Any]], failed: dict[str, str]) -> dict[str, Any]:
    """Mean KL (and its null's) per example and per tenth of the response; the tokens where the models disagree most."""
    relative = np.asarray(rows["relative_position"], dtype=float)
    kls = {name: np.asarray(rows[name], dtype=float) for name in ("kl", NULL_COLUMN) if name in rows}
    kl = kls["kl"]
    bins = np.minimum((relative * POSITION_BINS).astype(int), POSITION_BINS - 1)
    by_position = [
        {
            "bin": b,
            **{f"mean_{name}": float(v[bins == b].mean()) if (bins == b).any() else None for name, v in kls.items()},
            "tokens": int((bins == b).sum()),
        }
        for b in range(POSITION_BINS)
    ]
    top = np.argsort(-kl, kind="stable")[:TOP_TOKENS]
    keys = [k for k in ("id", "position", "token", *COLUMNS, NULL_COLUMN) if k in rows]
    return {
        **{f"mean_{name}": float(v.mean()) if len(v) else None for name, v in kls.items()},
        "examples": per_example,
        "by_relative_position": by_position,
        "top_tokens": [{k: rows[k][i] for k in keys} for i in top.tolist()],
        "failed": failed,
    }


def lens_summary(rows: dict[str, list[Any]], lens: dict[str, list[np.ndarray]]) -> dict[str, Any]:
    """Per layer each model's mean probability of the response token, and where predictions form (layer means)."""
    out: dict[str, Any] = {}
    for role, parts in lens.items():
        out[f"mean_probability_by_layer_{role}"] = np.concatenate(parts, axis=1).mean(1).tolist() if parts else []
    base, tuned = np.asarray(rows["formation_base"]), np.asarray(rows["formation_tuned"])
    both = (base >= 0) & (tuned >= 0)
    out["tokens_formed"] = {"base": int((base >= 0).sum()), "tuned": int((tuned >= 0).sum()), "both": int(both.sum())}
    out["mean_formation_layer"] = {
        "base": float(base[both].mean()) if both.any() else None,
        "tuned": float(tuned[both].mean()) if both.any() else None,
        "tuned_minus_base": float((tuned[both] - base[both]).mean()) if both.any() else None,
    }
    return out


def diff_tokens(
    base: LoadedModel,
    tuned: LoadedModel,
    examples: Sequence[Example],
    out: str | Path,
    max_new_tokens: int = 200,
    force: bool = False,
    null_seed: int | None = 0,
) -> Path:
    """Run (or resume; ``force``: start over) the per-token divergence of ``examples`` into the run ``out``.

    ``null_seed``: the seed of the null model's noise (None: no null column).
    """
    from shiftlens.runs import execute

    def setup() -> TokensJob:
        return TokensJob(base, tuned, examples, max_new_tokens, null_seed)

    return execute(setup, out, device=str(base.model.device), force=force)
