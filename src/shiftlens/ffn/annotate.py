"""The annotation run: label an FFN run's components, one unit of the run engine per layer (`shiftlens annotate`).

Each layer's components are labelled ``runs`` times by an annotator (the LLM one caches every answer,
`shiftlens.ffn.answer_cache`, so a rerun asks nothing twice); ``labels.parquet`` and ``summary.json``
are written from every stored layer at the end. An endpoint that keeps failing stops the run (every
layer would fail alike): the finished layers and the answers received so far are kept for a rerun.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, replace
from pathlib import Path

from shiftlens.config import identity, summary
from shiftlens.errors import ShiftlensError
from shiftlens.ffn.annotation_settings import AnnotationSettings
from shiftlens.ffn.annotation_summary import label_summary
from shiftlens.ffn.annotators import EndpointSettings, build_annotator
from shiftlens.ffn.answer_cache import CACHE_FILE, AnswerCache, cache_key
from shiftlens.ffn.endpoint import (
    ChatEndpoint,
    EndpointError,
    Sampling,
    TransientError,
    api_key_from_environment,
    question_sampling,
)
from shiftlens.ffn.labels import KIND, LABELS_FILE, SUMMARY_FILE, Annotator, Label, write_labels
from shiftlens.ffn.llm_annotator import LLMAnnotator
from shiftlens.ffn.records import KIND as FFN_KIND
from shiftlens.ffn.records import FfnRun, read_ffn_run
from shiftlens.runs import Job, Unit, UnitData, check_kind, execute
from shiftlens.runs.layers import layer_units
from shiftlens.runs.lifecycle import check_out
from shiftlens.storage import RunDirectory, atomic_write_json

__all__ = [
    "annotate",
    "CACHE_FILE",
    "KIND",
    "AnswerCache",
    "ChatEndpoint",
    "EndpointError",
    "LLMAnnotator",
    "Sampling",
    "TransientError",
    "annotate_ffn",
    "api_key_from_environment",
    "cache_key",
    "default_out",
    "question_sampling",
]


def default_out(ffn_dir: str | Path) -> Path:
    """Where annotations of an FFN run go unless told otherwise (and where the analysis looks)."""
    return Path(ffn_dir) / "annotations"


class AnnotationJob(Job):
    """Labels of one FFN run: a unit per layer holding its components' labels for every run."""

    kind, noun = KIND, "layer"
    fatal = (EndpointError,)

    def __init__(self, ffn: FfnRun, annotator: Annotator, settings: AnnotationSettings) -> None:
        self.ffn, self.annotator, self.settings = ffn, annotator, settings
        self.params = {
            **identity(settings),
            "ffn_run": {"created": ffn.manifest.get("created"), **ffn.manifest["params"]},
            "annotator": annotator.describe(),
        }
        self.info = {"heuristic": annotator.heuristic, "summary": summary(settings)}
        if annotator.heuristic:
            self.info["note"] = "labels from the offline lexical heuristic, not from a language model"

    def units(self) -> list[Unit]:
        """One unit per layer of the FFN run."""
        return layer_units(self.ffn.layers)

    def compute(self, unit: Unit) -> UnitData:
        """Every (component, run) label of one layer, asked ``concurrency`` at a time."""
        layer, s = int(unit.name.rpartition("-")[2]), self.settings
        n = self.ffn.layers[layer].components.shape[0]
        jobs = [(c, r) for c in range(min(s.components or n, n)) for r in range(s.runs)]
        with ThreadPoolExecutor(max_workers=s.concurrency) as pool:
            futures = [pool.submit(self.annotator.label, self.ffn.top_words(layer, c, s.n_words), r) for c, r in jobs]
            try:
                labels = [future.result() for future in futures]
            except BaseException:
                pool.shutdown(cancel_futures=True)
                raise
        rows = [[c, r, asdict(label)] for (c, r), label in zip(jobs, labels)]
        return {"layer": layer, "labels": rows}, {}

    def finish(self, run: RunDirectory, failed: dict[str, str]) -> None:
        """``labels.parquet`` and ``summary.json`` over every stored layer."""
        labels = {
            (meta["layer"], c, r): Label(**label)
            for meta, _ in (run.read_unit(name) for name in run.unit_names())
            for c, r, label in meta["labels"]
        }
        write_labels(run.path / LABELS_FILE, labels, self.annotator.heuristic)
        stats = label_summary(labels, self.annotator, self.settings.runs)
        if isinstance(self.annotator, LLMAnnotator):  # this call's requests and cache hits
            stats["requests"], stats["cache_hits"] = self.annotator.requests, self.annotator.cache_hits
        atomic_write_json(run.path / SUMMARY_FILE, stats)
        run.update_manifest(n_labels=len(labels))


def annotate_ffn(
    ffn_dir: str | Path,
    annotator: Annotator,
    settings: AnnotationSettings | None = None,
    *,
    out: str | Path | None = None,
    force: bool = False,
) -> Path:
    """Label the first ``components`` components of every layer of an FFN run, ``runs`` times each.

    Writes ``labels.parquet`` and ``summary.json`` into ``out`` (default ``FFN_DIR/annotations``) and
    returns ``out``. ``settings.annotator`` and ``settings.protocol`` chose ``annotator`` (`build_annotator`);
    ``force`` deletes an annotation run stored in ``out`` first.
    """
    settings = settings or AnnotationSettings()
    ffn = read_ffn_run(ffn_dir)
    out = Path(out) if out is not None else default_out(ffn_dir)
    try:
        return execute(lambda: AnnotationJob(ffn, annotator, settings), out, force=force)
    except EndpointError as error:
        raise ShiftlensError(f"{error}; the answers received so far are kept in {out}, rerun to resume") from error


def annotate(
    ffn_dir: str | Path,
    settings: AnnotationSettings | None = None,
    endpoint: EndpointSettings | None = None,
    *,
    out: str | Path | None = None,
    cache: str | Path | None = None,
    force: bool = False,
) -> Path:
    """Build the annotator ``settings`` name (LLM endpoint or lexical heuristic) and label an FFN run with it.

    The library's one call for `shiftlens annotate`; the API key comes only from the environment. The FFN
    run, ``out`` and the annotator are checked before anything is written (the answer cache included).
    """
    settings = settings or AnnotationSettings()
    check_kind(ffn_dir, FFN_KIND)
    out = check_out(out if out is not None else default_out(ffn_dir))
    setup = build_annotator(
        settings.annotator, out, endpoint or EndpointSettings(), settings.runs, cache, settings.protocol
    )
    try:
        return annotate_ffn(ffn_dir, setup.annotator, replace(settings, runs=setup.runs), out=out, force=force)
    finally:
        setup.close()
