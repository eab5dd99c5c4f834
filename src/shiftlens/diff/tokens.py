"""Per-token divergence of a base/tuned pair as a resumable run: one unit per example, then ``tokens.parquet``.

Both models are teacher-forced on the same ids: the prompt in the tuned model's chat template, then the
example's response (the data's, or the tuned model's greedy reply), so the statistics of
`shiftlens.diff.divergence` and both models' logit lens (`shiftlens.diff.lens`) cost one forward per model
per example. Both models are held at once here (the
weight map never holds more than two tensors).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from shiftlens.atomic import atomic_write_json, atomic_write_parquet
from shiftlens.diff.divergence import token_divergence
from shiftlens.diff.lens import formation_layer, read_forward
from shiftlens.errors import ShiftlensError
from shiftlens.examples import Example
from shiftlens.models import LoadedModel
from shiftlens.prompting import build_sequence, chat_format, generate
from shiftlens.runs import Job, Unit, UnitData, model_key
from shiftlens.runs.lifecycle import unit_file_name
from shiftlens.storage import RunDirectory

RUN_KIND = "diff-tokens"
TOKENS_FILE, SUMMARY_FILE = "tokens.parquet", "summary.json"
POSITION_BINS = 10  # the summary's relative positions in the response: tenths
TOP_TOKENS = 20  # the summary's most disagreeing tokens
COLUMNS = ("kl", "p_base", "p_tuned", "rank_base", "rank_tuned", "formation_base", "formation_tuned")


class TokenizerMismatch(ShiftlensError, ValueError):
    """Two models whose vocabularies differ: their distributions over tokens cannot be compared."""


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
        self, base: LoadedModel, tuned: LoadedModel, examples: Sequence[Example], max_new_tokens: int = 200
    ) -> None:
        _check_vocabularies(base.tokenizer, tuned.tokenizer)
        self.base, self.tuned, self.max_new_tokens = base, tuned, max_new_tokens
        self.examples = {e.id: e for e in examples}
        self.fmt = chat_format(tuned.tokenizer, "auto", tuned.model)
        self.params = {
            "models": {"base": model_key(base.manifest()), "tuned": model_key(tuned.manifest())},
            "max_new_tokens": max_new_tokens,
            "example_ids": list(self.examples),
        }
        self.info = {"model": {"base": base.manifest(), "tuned": tuned.manifest()}}

    def units(self) -> list[Unit]:
        """One unit per example."""
        return [Unit(unit_file_name(i), i) for i in self.examples]

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
        meta = {"id": example.id, "response": response, "source": source, "tokens": seq.response.tokens}
        return meta, {name: value.numpy() for name, value in arrays.items()}

    def finish(self, run: RunDirectory, failed: dict[str, str]) -> None:
        """``tokens.parquet`` (one row per response token) and ``summary.json``."""
        rows: dict[str, list[Any]] = {"id": [], "position": [], "relative_position": [], "token": []}
        rows.update({name: [] for name in COLUMNS})
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
            for name in COLUMNS:
                rows[name] += arrays[name].tolist()
            per_example.append({"id": meta["id"], "mean_kl": float(arrays["kl"].mean()), "tokens": n})
            for role in lens:
                lens[role].append(arrays[f"lens_probability_{role}"])
        atomic_write_parquet(run.path / TOKENS_FILE, pa.table(rows))
        result = summary(rows, per_example, failed)
        result["logit_lens"] = lens_summary(rows, lens)
        atomic_write_json(run.path / SUMMARY_FILE, result)


def summary(rows: dict[str, list[Any]], per_example: list[dict[str, Any]], failed: dict[str, str]) -> dict[str, Any]:
    """Mean KL per example and per tenth of the response, and the tokens where the models disagree most."""
    kl, relative = np.asarray(rows["kl"], dtype=float), np.asarray(rows["relative_position"], dtype=float)
    bins = np.minimum((relative * POSITION_BINS).astype(int), POSITION_BINS - 1)
    by_position = [
        {
            "bin": b,
            "mean_kl": float(kl[bins == b].mean()) if (bins == b).any() else None,
            "tokens": int((bins == b).sum()),
        }
        for b in range(POSITION_BINS)
    ]
    top = np.argsort(-kl, kind="stable")[:TOP_TOKENS]
    keys = ("id", "position", "token", *COLUMNS)
    return {
        "mean_kl": float(kl.mean()) if len(kl) else None,
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
) -> Path:
    """Run (or resume; ``force``: start over) the per-token divergence of ``examples`` into the run ``out``."""
    from shiftlens.runs import execute

    def setup() -> TokensJob:
        return TokensJob(base, tuned, examples, max_new_tokens)

    return execute(setup, out, device=str(base.model.device), force=force)
