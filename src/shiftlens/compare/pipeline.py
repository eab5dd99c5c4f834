"""`shiftlens compare`: a base and a tuned model through every method, the analyses and the HTML report.

Layout of the output directory (itself a resumable run of kind "compare", one unit per finished step)::

    attribution/{tuned,base}/   heads/{tuned,base}/   ffn/{tuned,base}/ (+ annotations/)
    analysis/{instructions,heads,ffn}/   results.json   report.html   chat_template.jinja

The tuned model runs first: by default it generates the responses that both models then explain, on
identical prompt tokens (the tuned model's chat template wraps the prompt for both). Each model is loaded
once, only if one of its steps is unfinished, and freed before the other is loaded. Rerunning the same
command resumes every step where it stopped; the analyses and the report are always rebuilt.
"""

from __future__ import annotations

import gc
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from shiftlens.attribution.pipeline import RunFailures, attribute
from shiftlens.compare.results import assemble_results, null_draws, read_results, write_results
from shiftlens.compare.settings import CompareSettings, ModelSpec
from shiftlens.compare.tokenizers import check_tokenizers
from shiftlens.errors import ShiftlensError
from shiftlens.examples import Example, load_examples, require_responses
from shiftlens.ffn.annotators import build_annotator
from shiftlens.models import LoadedModel, load_tokenizer
from shiftlens.storage import RunDirectory, atomic_write_text, file_sha256

RUN_KIND = "compare"
ROLES = ("tuned", "base")  # the tuned model first: its responses are explained by both
NULL_UNIT = "null-baselines"  # the seeded null draws, computed once both models finished their methods


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


def step_name(method: str, role: str) -> str:
    """The unit recording that ``method`` finished for the ``role`` model (e.g. "heads-base")."""
    return f"{method}-{role}"


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


class _Steps:
    """Runs the steps of one model, each into its own resumable sub-run of the comparison directory."""

    def __init__(
        self,
        out: Path,
        examples: Sequence[Example],
        vocab: Path,
        settings: CompareSettings,
        chat_template: str,
    ) -> None:
        self.out, self.examples, self.vocab, self.settings = out, examples, vocab, settings
        self.chat_template = chat_template
        self.annotator = None

    def attribution(self, lm: LoadedModel, role: str) -> None:
        """Attribution of the responses: the tuned model's by default, each model's own, or the data's."""
        responses = self.settings.responses
        explains_tuned = role == "base" and responses == "tuned"
        settings = replace(
            self.settings.attribution,
            chat_template=self.chat_template,
            responses_from=str(self.out / "attribution" / "tuned") if explains_tuned else None,
            generate_responses=responses == "each" or (responses == "tuned" and role == "tuned"),
            ratings=None,  # the examples are read, limited and rated once, by `compare`
            limit=None,
        )
        allow = self.settings.allow_different_tokenizers  # checked by compare, and said in the report
        attribute(lm, self.examples, self.out / "attribution" / role, settings, allow_other_tokenizer=allow)

    def heads(self, lm: LoadedModel, role: str) -> None:
        """Word pairs of every attention head."""
        from shiftlens.heads.pipeline import explain_heads

        explain_heads(lm, self.vocab, self.out / "heads" / role, self.settings.heads)

    def ffn(self, lm: LoadedModel, role: str) -> None:
        """Principal components of every FFN down-projection as word lists."""
        from shiftlens.ffn.pipeline import explain_ffn

        explain_ffn(lm, self.vocab, self.out / "ffn" / role, self.settings.ffn)

    def annotate(self, lm: LoadedModel | None, role: str) -> None:
        """Concept labels of the FFN components (needs no model: an annotator reads the word lists)."""
        from shiftlens.ffn.annotate import annotate_ffn, default_out

        ffn_dir = self.out / "ffn" / role
        settings = self.settings.annotation
        setup = build_annotator(
            settings.annotator, default_out(ffn_dir), self.settings.endpoint, settings.runs, protocol=settings.protocol
        )
        try:
            annotate_ffn(ffn_dir, setup.annotator, replace(settings, runs=setup.runs))
        finally:
            setup.close()


def as_spec(model: ModelSpec | str) -> ModelSpec:
    """A model name as a `ModelSpec` with the default loading options; a spec as it is."""
    return model if isinstance(model, ModelSpec) else ModelSpec(model)


def compare(
    base: ModelSpec | str,
    tuned: ModelSpec | str,
    data: str | Path | Sequence[Example],
    vocab: str | Path,
    out: str | Path,
    settings: CompareSettings | None = None,
    log: Callable[[str], None] = lambda message: None,
) -> CompareSummary:
    """Run every method on both models, the analyses and the report into ``out`` (resumed when it exists).

    Raises `TokenizerMismatch` before any work when the tokenizers differ (unless allowed), and
    `CompareIncomplete` at the end when examples failed (the rest is stored and the report written).
    """
    settings = settings or CompareSettings()
    specs = {"base": as_spec(base), "tuned": as_spec(tuned)}
    out, vocab = Path(out), Path(vocab)
    if not vocab.is_file():
        raise ShiftlensError(f"vocabulary file {vocab} does not exist")
    examples = load_examples(data, settings.attribution.ratings, settings.attribution.limit)
    if settings.responses == "data":
        require_responses(examples)
    tokenizers = {
        role: load_tokenizer(s.name, gguf_file=s.gguf_file, trust_remote_code=s.trust_remote_code)
        for role, s in specs.items()
    }
    texts = [e.prompt for e in examples] + [e.response for e in examples if e.response]
    difference = check_tokenizers(tokenizers["base"], tokenizers["tuned"], texts, settings.allow_different_tokenizers)
    params = {
        "models": {role: s.record() for role, s in specs.items()},
        "data_sha256": file_sha256(Path(data)) if isinstance(data, (str, Path)) else None,
        "example_ids": [e.id for e in examples],
        "vocab_sha256": file_sha256(vocab),
        "settings": settings.record(),
    }
    info = {"data": str(data) if isinstance(data, (str, Path)) else "in memory", "vocab": str(vocab)}
    failed: dict[str, dict[str, str]] = {}
    with RunDirectory(out, RUN_KIND, params, info) as run:
        steps = _steps(settings)
        runner = _Steps(out, examples, vocab, settings, _chat_template(out, tokenizers["tuned"]))
        ran = False  # a method step ran in this call: the null draws rest on its outputs
        for role in ROLES:
            todo = [s for s in steps if not run.has_unit(step_name(s, role))]
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
                run.write_unit(step_name(step, role), {"seconds": round(time.perf_counter() - start, 3)})
            del lm
            gc.collect()
        if settings.null_draws and (ran or not run.has_unit(NULL_UNIT)):
            log(f"null baselines: {settings.null_draws} draws of base + noise of the tuning's size")
            start = time.perf_counter()
            nulls = null_draws(out, specs, settings)
            run.write_unit(NULL_UNIT, {"seconds": round(time.perf_counter() - start, 3), **nulls})
        nulls = run.read_unit(NULL_UNIT)[0] if settings.null_draws else {}
        timings = {name: run.read_unit(name)[0]["seconds"] for name in run.unit_names()}
        log("analyses and report")
        results = assemble_results(out, specs, settings, timings, difference, nulls)
        report, results_path = write_results(out, results)
        run.update_manifest(failed=failed, complete=not failed)
    summary = CompareSummary(out, report, results_path, failed, timings)
    if failed:
        counts = ", ".join(f"{len(ids)} for the {role} model" for role, ids in failed.items())
        raise CompareIncomplete(
            f"some examples could not be explained ({counts}; reasons in {out}/attribution/*/summary.csv); "
            f"everything else is stored and {report} was written. Rerun the same command to retry them"
        )
    return summary
