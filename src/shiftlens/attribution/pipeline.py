"""The attribution run: examples in, one resumable unit per example out (`shiftlens attribute`).

For each example: take its response (from another run, from the data, or generated greedily), build
the model input (`shiftlens.prompting`), mark the instruction tokens (`shiftlens.spans`), compute the
gradient × input matrix (`shiftlens.attribution.core.attribute`) and store it as a unit of a
`RunDirectory` of kind "attribution". Finished examples are skipped when the run is resumed. An example
that cannot be explained (empty, too long for the context, span not found, out of memory) is recorded
under ``failed`` in the manifest and the run goes on; it ends with `RunFailures` naming them.
At the end ``summary.csv`` lists every example with its token counts and instruction score.

Data-parallel runs split the examples into shards writing units into the same directory: a shard
(``--shard i/n``, or one rank under torchrun / accelerate launch) records its failures in its own file
and never touches manifest.json or summary.csv; one process merges afterwards (the rerun without
``--shard``, or rank 0 after the ranks' barrier, see `shiftlens.distributed`).
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from shiftlens.attribution import core
from shiftlens.attribution.records import RUN_KIND, ExampleAttribution, unit_name, write_example
from shiftlens.density import DensityParams, importance_density, instruction_score
from shiftlens.distributed import Launch, process_group, rank_device, run_then_merge
from shiftlens.errors import ShiftlensError
from shiftlens.examples import Example, load_examples
from shiftlens.models import LoadedModel, load_model
from shiftlens.progress import progress
from shiftlens.prompting import ChatFormat, build_sequence, chat_format, generate
from shiftlens.spans import locate_all, token_mask
from shiftlens.storage import RunDirectory, Shard, atomic_write_json, atomic_write_text, read_manifest, read_units

DEFAULT_MAX_NEW_TOKENS = 300  # the paper's generation length
DEFAULT_DENSITY = DensityParams()
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
IN_MANIFEST = "listed under 'failed' in manifest.json and in summary.csv"


class RunFailures(ShiftlensError, RuntimeError):
    """Some examples failed; the others are stored. ``path`` is the run, ``failed`` maps id to reason."""

    def __init__(self, path: Path, failed: dict[str, str], total: int, where: str = IN_MANIFEST):
        self.path, self.failed = path, failed
        shown = "; ".join(f"{k}: {v}" for k, v in list(failed.items())[:3])
        more = f" (and {len(failed) - 3} more)" if len(failed) > 3 else ""
        super().__init__(
            f"{len(failed)} of {total} examples failed, the others are stored in {path} "
            f"(failures {where}): {shown}{more}"
        )


def responses_of(run: str | Path) -> dict[str, str]:
    """The response text of every stored example of another attribution run, by id."""
    kind = read_manifest(run).get("kind")
    if kind != RUN_KIND:
        raise ShiftlensError(f"--responses-from {run} is a {kind!r} run, not an attribution run")
    return {meta["id"]: meta["response"] for _, meta, _ in read_units(run)}


def _template_param(policy: str) -> str | dict[str, str]:
    if policy in ("auto", "none"):
        return policy
    path = Path(policy)
    if not path.is_file():
        raise ShiftlensError(f"--chat-template takes auto, none or a Jinja file; {policy!r} is none of them")
    return {"file": str(path), "sha256": hashlib.sha256(path.read_bytes()).hexdigest()}


class _Explainer:
    """Explains one example at a time with a loaded model and fixed settings."""

    def __init__(self, lm: LoadedModel, fmt: ChatFormat, settings: dict[str, Any], responses: dict[str, str] | None):
        self.lm, self.fmt, self.settings, self.responses = lm, fmt, settings, responses

    def response(self, example: Example) -> tuple[str, str]:
        """The response text to explain and where it came from (run, data or generated)."""
        if self.responses is not None:
            if example.id not in self.responses:
                raise ShiftlensError(f"example {example.id!r}: no response for it in --responses-from")
            return self.responses[example.id], "run"
        if example.response is not None and not self.settings["generate"]:
            return example.response, "data"
        text = generate(
            self.lm.model,
            self.fmt,
            self.lm.tokenizer,
            example.prompt,
            self.settings["max_new_tokens"],
            example.id,
        )
        return text, "generated"

    def __call__(self, example: Example) -> ExampleAttribution:
        """The attribution record of one example."""
        response, source = self.response(example)
        seq = build_sequence(self.lm.model, self.fmt, self.lm.tokenizer, example.prompt, response, example.id)
        instruction = locate_all(example.prompt, example.instruction, example.id)
        context = locate_all(example.prompt, example.context, example.id)
        plans: list[core.Plan] = []
        matrix = core.attribute(
            self.lm.model,
            seq.input_ids,
            seq.prompt_positions,
            seq.response_positions,
            objective=self.settings["objective"],
            mode=self.settings["mode"],
            chunk_size=self.settings["chunk_size"],
            memory_budget=self.settings["memory_budget"],
            report=plans.append,
        )
        return ExampleAttribution(
            id=example.id,
            prompt=example.prompt,
            response=response,
            prompt_tokens=seq.prompt.tokens,
            prompt_offsets=seq.prompt.offsets,
            response_tokens=seq.response.tokens,
            response_offsets=seq.response.offsets,
            instruction_mask=token_mask(seq.prompt.offsets, instruction).tolist(),
            attribution=matrix.numpy(),
            group=example.group,
            rating=example.rating,
            instruction_spans=instruction,
            extra={
                "context_spans": context,
                "response_source": source,
                "sequence_length": len(seq.input_ids),
                "speed": plans[0].to_json(),  # how this example was computed; never part of the run's identity
            },
        )


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


@dataclass(frozen=True)
class _Job:
    """One run's fixed parts: the explainer and the run directory's parameters and info."""

    explain: _Explainer
    params: dict[str, Any]
    info: dict[str, Any]
    density: DensityParams

    def open(self, out: str | Path, shard: Shard | None = None) -> RunDirectory:
        """The run directory ``out``, whole (exclusive) or as one shard of it."""
        return RunDirectory(out, RUN_KIND, self.params, self.info, shard=shard)


def shard_failures_path(out: str | Path, shard: Shard) -> Path:
    """Where a shard records its failed examples (shards never write manifest.json, the merge does)."""
    return Path(out) / "failures" / f"shard-{shard.index}-of-{shard.count}.json"


def _compute(
    run: RunDirectory,
    examples: Sequence[Example],
    job: _Job,
    record_failures: Callable[[dict[str, str]], None],
    desc: str,
) -> dict[str, str]:
    """Explain and store every example not stored yet; failures go to ``record_failures(failed)`` as they occur."""
    failed: dict[str, str] = {}
    todo = [e for e in examples if not run.has_unit(unit_name(e.id))]
    for example in progress(todo, total=len(todo), desc=desc, unit="example"):
        try:
            record = job.explain(example)
        except (ShiftlensError, torch.cuda.OutOfMemoryError) as exc:
            failed[example.id] = str(exc)
            record_failures(failed)
            continue
        write_example(run, record)  # a storage error (disk full) stops the run: resuming continues it
    return failed


def _run_shard(job: _Job, examples: Sequence[Example], out: str | Path, shard: Shard) -> dict[str, str]:
    """Compute one shard's examples into ``out``; its failures go to its own file. Returns them."""
    path = shard_failures_path(out, shard)
    with job.open(out, shard) as run:
        failed = _compute(
            run,
            shard.select(list(examples)),
            job,
            lambda f: atomic_write_json(path, f),
            f"attribute {shard.index}/{shard.count}",
        )
        atomic_write_json(path, failed)
    return failed


def _finish(
    run: RunDirectory, examples: Sequence[Example], failed: dict[str, str], density: DensityParams
) -> dict[str, str]:
    """Counts and failures into the manifest, ``summary.csv``; shard failure files are folded in and removed.

    Returns every example not stored with its reason (an example nobody finished is "not computed").
    """
    missing = {
        e.id: failed.get(e.id, "not computed (its shard did not finish)")
        for e in examples
        if not run.has_unit(unit_name(e.id))
    }
    run.update_manifest(
        failed=missing,
        counts={"examples": len(examples), "stored": len(examples) - len(missing), "failed": len(missing)},
    )
    write_summary(run, examples, missing, density)
    for path in sorted((run.path / "failures").glob("shard-*.json")):
        path.unlink()
    return missing


def _run_whole(job: _Job, examples: Sequence[Example], out: str | Path) -> dict[str, str]:
    """Compute every example not stored yet (also the merge of a sharded run), then finish the run."""
    with job.open(out) as run:
        failed = _compute(run, examples, job, lambda f: run.update_manifest(failed=f), "attribute")
        return _finish(run, examples, failed, job.density)


def _merge_shards(job: _Job, examples: Sequence[Example], out: str | Path) -> dict[str, str]:
    """Rank 0's merge after every rank finished: nothing is computed, shard failures are collected."""
    with job.open(out) as run:
        failed: dict[str, str] = {}
        for path in sorted((run.path / "failures").glob("shard-*.json")):
            failed.update(json.loads(path.read_text(encoding="utf-8")))
        return _finish(run, examples, failed, job.density)


def attribute(
    model: str | LoadedModel,
    data: str | Path | Sequence[Example],
    out: str | Path,
    *,
    objective: str = "prob",
    mode: str = "auto",
    chat_template: str = "auto",
    max_new_tokens: int = DEFAULT_MAX_NEW_TOKENS,
    dtype: str = "float32",
    device: str = "cpu",
    gguf_file: str | None = None,
    adapter: str | None = None,
    trust_remote_code: bool = False,
    responses_from: str | Path | None = None,
    generate_responses: bool = False,
    ratings: str | Path | dict[str, float] | None = None,
    limit: int | None = None,
    chunk_size: int | None = None,
    memory_budget: float = core.DEFAULT_MEMORY_BUDGET,
    density: DensityParams = DEFAULT_DENSITY,
    shard: Shard | None = None,
    launch: Launch | None = None,
) -> Path:
    """Explain every example's response tokens by its prompt tokens into the run directory ``out``.

    ``model`` is a name/path (loaded with dtype, device, gguf_file, adapter, trust_remote_code) or a
    `LoadedModel`. ``mode``, ``chunk_size`` and ``memory_budget`` only change speed and memory
    (`shiftlens.attribution.core.attribute`), so they are not run parameters: a resume with other values
    reuses the stored units. Responses come from ``responses_from`` (another run's, so two models explain the same
    text), else the data's, else greedy generation (always, with ``generate_responses``). Returns ``out``;
    raises `RunFailures` after the loop if any example failed (finished ones stay stored).

    With ``shard`` (job arrays) only ``shard.select(examples)`` is computed and no summary is written: run
    again without ``shard`` once all shards ended to merge (nothing stored is recomputed). With ``launch``
    (one rank of torchrun / accelerate launch, `shiftlens.distributed.launched`) each rank computes its
    shard, the ranks meet, and rank 0 merges and raises `RunFailures` for all; the other ranks return.
    """
    if objective not in core.OBJECTIVES:
        raise ShiftlensError(f"unknown objective {objective!r}; choose one of {', '.join(core.OBJECTIVES)}")
    if mode not in core.MODES:
        raise ShiftlensError(f"unknown mode {mode!r}; choose one of {', '.join(core.MODES)}")
    if not memory_budget > 0:
        raise ShiftlensError(f"memory_budget must be positive, got {memory_budget}")
    if max_new_tokens < 1:
        raise ShiftlensError(f"max_new_tokens must be at least 1, got {max_new_tokens}")
    if launch is not None:
        if shard is not None:
            raise ShiftlensError(
                f"--shard {shard.index}/{shard.count} cannot be combined with torchrun or accelerate launch "
                f"(WORLD_SIZE={launch.shard.count}): each rank already takes its own shard"
            )
        device = rank_device(device, launch)
    examples = load_examples(data, ratings, limit)
    responses = responses_of(responses_from) if responses_from is not None else None
    template = _template_param(chat_template)

    def setup() -> _Job:
        lm = model
        if not isinstance(lm, LoadedModel):
            lm = load_model(
                lm,
                gguf_file=gguf_file,
                adapter=adapter,
                dtype=dtype,
                device=device,
                trust_remote_code=trust_remote_code,
            )
        fmt = chat_format(lm.tokenizer, chat_template, lm.model)
        params = {
            "objective": objective,
            "chat_template": template,
            "max_new_tokens": max_new_tokens,
            "generate_responses": generate_responses,
            "responses_from": None if responses_from is None else str(responses_from),
            "density": asdict(density),
            "model": {"weight_hash": lm.weight_hash, "dtype": lm.dtype, "adapter": lm.extra.get("adapter")},
        }
        info = {
            "model": lm.manifest(),
            "chat_format": {"template": fmt.template, "prefix_ids": fmt.prefix_ids, "suffix_ids": fmt.suffix_ids},
            # Speed-only settings of the process that created the run (each unit's extra.speed has its plan):
            # not in params, so a resume with another mode, budget or thread count reuses the stored units.
            "speed": {
                "mode": mode,
                "chunk_size": chunk_size,
                "memory_budget": memory_budget,
                "threads": torch.get_num_threads(),
                "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY"),  # the CLI sets PASSIVE (shiftlens.cli)
            },
        }
        settings = {
            "objective": objective,
            "mode": mode,
            "chunk_size": chunk_size,
            "memory_budget": memory_budget,
            "max_new_tokens": max_new_tokens,
            "generate": generate_responses,
        }
        return _Job(_Explainer(lm, fmt, settings, responses), params, info, density)

    if launch is None and shard is None:
        failed = _run_whole(setup(), examples, out)
        where = IN_MANIFEST
    elif launch is None:
        failed = _run_shard(setup(), examples, out, shard)
        examples = shard.select(examples)
        where = f"listed in {shard_failures_path(out, shard)}; rerun without --shard to merge and retry them"
    else:
        jobs: list[_Job] = []  # set up inside the work, so that a rank failing to load still meets the others

        def work() -> None:
            jobs.append(setup())
            _run_shard(jobs[0], examples, out, launch.shard)

        with process_group(device):
            failed = run_then_merge(work, lambda: _merge_shards(jobs[0], examples, out)) or {}
        where = IN_MANIFEST
    if failed:
        raise RunFailures(Path(out), failed, len(examples), where)
    return Path(out)
