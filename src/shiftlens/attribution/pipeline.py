"""The attribution run: examples in, one resumable unit per example out (`shiftlens attribute`).

For each example: take its response (from another run, from the data, or generated greedily), build
the model input (`shiftlens.prompting`), mark the instruction tokens (`shiftlens.spans`), compute the
gradient × input matrix (`shiftlens.attribution.core.attribute`) and store it as a unit of a run of kind
"attribution". The run engine (`shiftlens.runs`) gives it resume, per-example failure records
(`RunFailures`), shards and launcher ranks; at the end ``summary.csv`` lists every example with its
token counts and instruction score.
"""

from __future__ import annotations

import csv
import hashlib
import io
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from shiftlens.attribution.explainer import Explainer
from shiftlens.attribution.inputs import check_responses_tokenizer
from shiftlens.attribution.records import RUN_KIND, example_unit, read_attribution_run, unit_name
from shiftlens.attribution.settings import AttributionSettings
from shiftlens.config import identity, summary
from shiftlens.density import DensityParams, importance_density, instruction_score
from shiftlens.distributed import Launch
from shiftlens.errors import ShiftlensError
from shiftlens.examples import Example, load_examples
from shiftlens.models import LoadedModel, ModelSpec
from shiftlens.prompting import chat_format
from shiftlens.runs import Job, RunFailures, Unit, UnitData, execute, model_key, placed, shard_failures_path
from shiftlens.storage import RunDirectory, Shard, atomic_write_text

__all__ = ["RunFailures", "attribute", "responses_of", "shard_failures_path", "write_summary"]
SUMMARY_COLUMNS = (
    "id",
    "group",
    "rating",
    "status",
    "n_prompt",
    "n_response",
    "n_instruction",
    "instruction_score",
    "response_source",
    "error",
)


def responses_of(run: str | Path) -> dict[str, str]:
    """The response text of every stored example of another attribution run, by id."""
    return {record.id: record.response for record in read_attribution_run(run)[1]}


def _template_param(policy: str) -> str | dict[str, str]:
    if policy in ("auto", "none"):
        return policy
    path = Path(policy)
    if not path.is_file():
        raise ShiftlensError(f"--chat-template takes auto, none or a Jinja file; {policy!r} is none of them")
    return {"file": str(path), "sha256": hashlib.sha256(path.read_bytes()).hexdigest()}


def write_summary(
    run: RunDirectory, examples: Sequence[Example], failed: dict[str, str], params: DensityParams
) -> Path:
    """``summary.csv``: one row per example (stored or failed) with token counts and instruction score."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(SUMMARY_COLUMNS)
    for example in examples:
        name = unit_name(example.id)
        if run.has_unit(name):
            meta, arrays = run.read_unit(name)
            mask = np.asarray(meta["instruction_mask"], dtype=bool)
            score = instruction_score(importance_density(arrays["attribution"], params), mask)
            counts = [
                len(meta["prompt_tokens"]),
                len(meta["response_tokens"]),
                int(mask.sum()),
                f"{score:.6g}",
            ]
            row = [meta["group"], meta["rating"], "ok", *counts, meta["extra"].get("response_source"), ""]
        else:
            row = [
                example.group,
                example.rating,
                "failed",
                "",
                "",
                "",
                "",
                "",
                failed.get(example.id, "not run"),
            ]
        writer.writerow([example.id, *("" if v is None else v for v in row)])
    path = run.path / "summary.csv"
    atomic_write_text(path, buffer.getvalue())
    return path


class AttributionJob(Job):
    """The attribution run of one loaded model: one unit per example, ``summary.csv`` at the end."""

    kind, noun = RUN_KIND, "example"

    def __init__(
        self,
        lm: LoadedModel,
        examples: Sequence[Example],
        settings: AttributionSettings,
        responses: dict[str, str] | None,
    ) -> None:
        fmt = chat_format(lm.tokenizer, settings.chat_template, lm.model)
        self.examples = {e.id: e for e in examples}
        self.explain = Explainer(lm, fmt, settings, responses)
        self.density = settings.density
        self.params = {**identity(settings), "chat_template": _template_param(settings.chat_template)}
        self.params["model"] = model_key(lm.manifest())
        self.info: dict[str, Any] = {
            "model": lm.manifest(),
            "chat_format": {"template": fmt.template, "prefix_ids": fmt.prefix_ids, "suffix_ids": fmt.suffix_ids},
            # Recorded, never checked: a resume with another mode, budget or thread count reuses the stored
            # units (each unit's extra.speed has its own plan).
            "summary": {
                **summary(settings),
                "threads": torch.get_num_threads(),
                "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY"),  # the CLI sets PASSIVE (shiftlens.cli)
            },
        }

    def units(self) -> list[Unit]:
        """One unit per example, keyed by its id."""
        return [Unit(unit_name(i), i) for i in self.examples]

    def compute(self, unit: Unit) -> UnitData:
        """The stored form of one example's attribution record."""
        return example_unit(self.explain(self.examples[unit.key]))

    def finish(self, run: RunDirectory, failed: dict[str, str]) -> None:
        """``summary.csv`` over every example."""
        write_summary(run, list(self.examples.values()), failed, self.density)


def attribute(
    model: ModelSpec | str | LoadedModel,
    data: str | Path | Sequence[Example],
    out: str | Path,
    settings: AttributionSettings | None = None,
    *,
    shard: Shard | None = None,
    launch: Launch | None = None,
    force: bool = False,
    allow_other_tokenizer: bool = False,
) -> Path:
    """Explain every example's response tokens by its prompt tokens into the run directory ``out``.

    ``model`` is a `ModelSpec` (or a name loaded with its defaults) or a `LoadedModel`. The settings'
    ``mode``, ``chunk_size`` and ``memory_budget`` only change speed and memory, and the density
    parameters only the summary, so a resume with other values reuses the stored units. Responses come
    from ``responses_from`` (another run's, so two models explain the same text), else the data's, else
    greedy generation (always, with ``generate_responses``). Returns ``out``; raises `RunFailures` after
    the loop if any example failed (finished ones stay stored). ``shard`` and ``launch``: `shiftlens.runs`;
    ``force`` deletes a run stored in ``out`` first. The model's spec and the data are checked first. A
    ``responses_from`` run made with another tokenizer is refused unless ``allow_other_tokenizer``.
    """
    settings = settings or AttributionSettings()
    spec = placed(ModelSpec(model) if isinstance(model, str) else model, shard, launch)
    examples = load_examples(data, settings.ratings, settings.limit)
    responses = responses_of(settings.responses_from) if settings.responses_from is not None else None
    if responses is not None and not allow_other_tokenizer:
        tokenizer = spec.tokenizer if isinstance(spec, LoadedModel) else spec.tokenizer()
        check_responses_tokenizer(settings.responses_from, tokenizer, spec.name)
    _template_param(settings.chat_template)  # a bad template fails before the model loads

    def setup() -> AttributionJob:
        lm = spec if isinstance(spec, LoadedModel) else spec.load()
        return AttributionJob(lm, examples, settings, responses)

    return execute(setup, out, shard=shard, launch=launch, device=spec.device, force=force)
