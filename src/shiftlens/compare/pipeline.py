"""`shiftlens compare`: a base and a tuned model through every method, the analyses and the HTML report.

Layout of the output directory (itself a resumable run of kind "compare", one unit per finished step)::

    attribution/{tuned,base}/   heads/{tuned,base}/   ffn/{tuned,base}/ (+ annotations/)
    diff/weights.parquet   diff/tokens/ (tokens.parquet, summary.json)
    analysis/{instructions,heads,ffn}/   results.json   report.html   chat_template.jinja

The tuned model runs first: by default it generates the responses that both models then explain, on
identical prompt tokens (the tuned model's chat template wraps the prompt for both). Each model is loaded
once, only if one of its steps is unfinished, and freed before the other is loaded; then the diff step
(`shiftlens.diff`, on by default) streams both checkpoints' weights and forces both models on the same
responses. Rerunning the same
command resumes every step where it stopped, redoes a step whose settings changed and recomputes a damaged
unit anywhere inside (`shiftlens.compare.steps`); the analyses and the report are always rebuilt.
"""

from __future__ import annotations

import gc
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from shiftlens.attribution.pipeline import RunFailures
from shiftlens.compare.results import assemble_results, null_draws, read_results, write_results
from shiftlens.compare.settings import CompareSettings, ModelSpec
from shiftlens.compare.steps import DIFF_UNIT, GROWING, NULL_UNIT, Steps, comparison_identity, step_name
from shiftlens.compare.tokenizers import check_tokenizers
from shiftlens.errors import ShiftlensError
from shiftlens.examples import Example, load_examples, require_responses
from shiftlens.ffn.annotators import check_annotator
from shiftlens.models import load_tokenizer
from shiftlens.runs.lifecycle import check_out
from shiftlens.storage import RunDirectory, atomic_write_text
from shiftlens.vocabulary import read_word_list

RUN_KIND = "compare"
ROLES = ("tuned", "base")  # the tuned model first: its responses are explained by both


class CompareIncomplete(ShiftlensError, RuntimeError):
    """Some examples could not be explained; everything else is stored and the report written."""


@dataclass
class CompareSummary:
    """Where a comparison wrote its results, and what failed (example id → reason, per model)."""

    path: Path
    report: Path
    results: Path
    failed: dict[str, dict[str, str]] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)

    def _repr_html_(self) -> str:
        """In Jupyter, the comparison shows as its report (the same sections and example explorer)."""
        from shiftlens.report import ComparisonView

        return ComparisonView(read_results(self.path))._repr_html_()


def _steps(settings: CompareSettings) -> list[str]:
    steps = list(settings.methods)
    if "ffn" in steps and settings.annotator is not None:
        steps.append("annotate")
    return steps


def _chat_template(out: Path, tuned_tokenizer: Any) -> str:
    """The tuned model's chat template as a file both models use ("none" if it has none)."""
    template = getattr(tuned_tokenizer, "chat_template", None)
    if not isinstance(template, str) or not template.strip():
        return "none"
    path = out / "chat_template.jinja"
    if not path.exists() or path.read_text(encoding="utf-8") != template:
        atomic_write_text(path, template)
    return str(path)


def as_spec(model: ModelSpec | str) -> ModelSpec:
    """A model name as a `ModelSpec` with the default loading options; a spec as it is."""
    return model if isinstance(model, ModelSpec) else ModelSpec(model)


def _check_inputs(specs: dict[str, ModelSpec], vocab: Path, out: Path, settings: CompareSettings) -> None:
    """What can be told wrong before any work: both models' specs, the word list, ``out``, the annotator."""
    for spec in specs.values():
        spec.check()
    read_word_list(vocab)
    check_out(out)
    if "ffn" in settings.methods and settings.annotator is not None:
        check_annotator(settings.annotator, settings.endpoint)


def compare(
    base: ModelSpec | str,
    tuned: ModelSpec | str,
    data: str | Path | Sequence[Example],
    vocab: str | Path,
    out: str | Path,
    settings: CompareSettings | None = None,
    log: Callable[[str], None] = lambda message: None,
    *,
    force: bool = False,
) -> CompareSummary:
    """Run every method on both models, the analyses and the report into ``out`` (resumed when it exists).

    Everything that can be checked is, before ``out`` is touched. A rerun resumes; more examples or layers
    extend the comparison; other settings of a later step redo only that step (`shiftlens.compare.steps`);
    other models, examples or attribution settings are refused unless ``force`` (then ``out`` starts over).
    Raises `TokenizerMismatch` before any work when the tokenizers differ (unless allowed), and
    `CompareIncomplete` at the end when examples failed (the rest is stored and the report written).
    """
    settings = settings or CompareSettings()
    specs = {"base": as_spec(base), "tuned": as_spec(tuned)}
    if not str(out).strip():
        check_out(out)  # '' is refused before Path('') turns it into the current directory
    out, vocab = Path(out), Path(vocab)
    if not vocab.is_file():
        raise ShiftlensError(f"vocabulary file {vocab} does not exist")
    _check_inputs(specs, vocab, out, settings)
    examples = load_examples(data, settings.attribution.ratings, settings.attribution.limit)
    if settings.responses == "data":
        require_responses(examples)
    tokenizers = {
        role: load_tokenizer(s.name, gguf_file=s.gguf_file, trust_remote_code=s.trust_remote_code)
        for role, s in specs.items()
    }
    texts = [e.prompt for e in examples] + [e.response for e in examples if e.response]
    difference = check_tokenizers(tokenizers["base"], tokenizers["tuned"], texts, settings.allow_different_tokenizers)
    params = comparison_identity(specs, examples, settings)
    info = {"data": str(data) if isinstance(data, (str, Path)) else "in memory", "vocab": str(vocab)}
    failed: dict[str, dict[str, str]] = {}
    with RunDirectory(out, RUN_KIND, params, info, force=force, growing=GROWING) as run:
        steps = _steps(settings)
        runner = Steps(out, examples, vocab, settings, _chat_template(out, tokenizers["tuned"]))
        ran = False  # a method step ran in this call: the null draws rest on its outputs
        for role in ROLES:
            todo = [s for s in steps if runner.plan(run, s, role, log)]
            ran = ran or bool(todo)
            lm = specs[role].load() if any(s != "annotate" for s in todo) else None
            for step in todo:
                number = ROLES.index(role) * len(steps) + steps.index(step) + 1
                log(f"[{number}/{2 * len(steps)}] {step} of the {role} model ({specs[role].name})")
                start = time.perf_counter()
                try:
                    getattr(runner, step)(lm, role)
                except RunFailures as exc:
                    failed[role] = exc.failed
                    log(f"  {len(exc.failed)} examples failed for the {role} model; the others are stored")
                    continue
                runner.done(run, step_name(step, role), step, time.perf_counter() - start)
            del lm
            gc.collect()
        if settings.diff and runner.plan(run, DIFF_UNIT, None, log):
            log("diff: weight deltas per layer, module and head; per-token divergence on the same responses")
            start = time.perf_counter()
            notes = runner.diff(specs, difference)
            runner.done(run, DIFF_UNIT, DIFF_UNIT, time.perf_counter() - start, not_run=notes)
            gc.collect()
        if settings.null_draws and (runner.plan(run, NULL_UNIT, None, log) or ran):
            log(f"null baselines: {settings.null_draws} draws of base + noise of the tuning's size")
            start = time.perf_counter()
            runner.done(run, NULL_UNIT, NULL_UNIT, time.perf_counter() - start, **null_draws(out, specs, settings))
        nulls = run.read_unit(NULL_UNIT)[0] if settings.null_draws else {}
        nulls = {key: nulls[key] for key in ("heads", "ffn") if key in nulls}
        timings = {name: run.read_unit(name)[0]["seconds"] for name in run.unit_names()}
        log("analyses and report")
        diff_notes = run.read_unit(DIFF_UNIT)[0].get("not_run", {}) if settings.diff else None
        results = assemble_results(out, specs, settings, timings, difference, nulls, diff_notes)
        report, results_path = write_results(out, results)
        models = {role: s.record() for role, s in specs.items()}
        run.update_manifest(failed=failed, complete=not failed, settings=settings.record(), models=models)
    summary = CompareSummary(out, report, results_path, failed, timings)
    if failed:
        counts = ", ".join(f"{len(ids)} for the {role} model" for role, ids in failed.items())
        raise CompareIncomplete(
            f"some examples could not be explained ({counts}; reasons in {out}/attribution/*/summary.csv); "
            f"everything else is stored and {report} was written. Rerun the same command to retry them"
        )
    return summary
