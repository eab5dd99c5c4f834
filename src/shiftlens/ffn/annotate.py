"""LLM annotation of FFN components through any OpenAI-compatible chat-completions endpoint.

Every answer is cached on disk (`AnswerCache`, append-only JSONL, fsynced) under a key of the prompt,
the endpoint's model name, the sampling parameters and the run index, so a rerun or a resumed run
sends no request whose answer it already has. Requests are retried with backoff on 429, 5xx,
timeouts and malformed replies; a concurrency limit caps the requests in flight.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import os
import random
import threading
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from shiftlens.config import setting
from shiftlens.errors import ShiftlensError
from shiftlens.evidence import DEFAULT_PROTOCOL, check_protocol
from shiftlens.ffn import prompts
from shiftlens.ffn.labels import (
    LABELS_FILE,
    OK,
    SKIPPED,
    SUMMARY_FILE,
    UNPARSEABLE,
    Annotator,
    Label,
    write_labels,
)
from shiftlens.ffn.records import read_ffn_run
from shiftlens.progress import progress
from shiftlens.storage import RunDirectory, atomic_write_json

if TYPE_CHECKING:
    from shiftlens.ffn.annotation_settings import AnnotationSettings

API_KEY_VARIABLES = ("SHIFTLENS_API_KEY", "OPENAI_API_KEY")
KIND = "ffn-annotations"
CACHE_FILE = "answers.jsonl"


class EndpointError(ShiftlensError, RuntimeError):
    """The endpoint refused the request for good (bad URL, model or key), or kept failing."""


class TransientError(Exception):
    """A failure worth retrying (429, 5xx, timeout, connection error, malformed reply)."""

    def __init__(self, message: str, retry_after: float | None = None):
        super().__init__(message)
        self.retry_after = retry_after


def api_key_from_environment() -> str | None:
    """The API key from SHIFTLENS_API_KEY or OPENAI_API_KEY (never from arguments, never stored)."""
    return next((os.environ[v] for v in API_KEY_VARIABLES if os.environ.get(v)), None)


@dataclass(frozen=True)
class Sampling:
    """Sampling parameters sent with every request (recorded in the manifest); ``seed`` is the run index."""

    temperature: float = setting(0.7, "sampling temperature of every question (protocol paper: the authors')")
    top_p: float = setting(1.0, "nucleus sampling: the top-p of every request")
    max_tokens: int = setting(48, "answer length limit in tokens")

    def body(self, run: int) -> dict[str, Any]:
        """The request fields for run ``run``."""
        return {
            "temperature": self.temperature,
            "top_p": self.top_p,
            "max_tokens": self.max_tokens,
            "seed": run,
        }


QUESTIONS = ("concept", "tasks", "level")
PAPER_TEMPERATURES = {"concept": 1.0, "tasks": 0.0, "level": 0.0}


def question_sampling(sampling: Sampling, protocol: str = DEFAULT_PROTOCOL) -> dict[str, Sampling]:
    """The sampling of each question: ``sampling`` for all, or the paper's temperatures under its protocol.

    The authors sample the concept prompt at temperature 1.0 and the task and level prompts at 0.
    """
    check_protocol(protocol)
    if protocol == "paper":
        return {q: replace(sampling, temperature=PAPER_TEMPERATURES[q]) for q in QUESTIONS}
    return dict.fromkeys(QUESTIONS, sampling)


class ChatEndpoint:
    """A minimal OpenAI-compatible chat-completions client (stdlib only) with retries and backoff."""

    def __init__(
        self,
        endpoint: str,
        model: str,
        *,
        api_key: str | None = None,
        timeout: float = 60.0,
        retries: int = 6,
        backoff: float = 1.0,
        max_backoff: float = 60.0,
    ) -> None:
        endpoint = endpoint.rstrip("/")
        self.url = endpoint if endpoint.endswith("/chat/completions") else endpoint + "/chat/completions"
        self.model = model
        self._api_key = api_key
        self.timeout, self.retries, self.backoff, self.max_backoff = timeout, retries, backoff, max_backoff

    def _post(self, body: dict[str, Any]) -> str:
        headers = {"Content-Type": "application/json"}
        if self._api_key:
            headers["Authorization"] = f"Bearer {self._api_key}"
        request = urllib.request.Request(self.url, json.dumps(body).encode(), headers, method="POST")
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                raw = response.read()
        except urllib.error.HTTPError as exc:
            if exc.code == 429 or exc.code >= 500:
                retry_after = exc.headers.get("Retry-After") if exc.headers else None
                raise TransientError(f"HTTP {exc.code}", _seconds(retry_after)) from exc
            detail = exc.read()[:200].decode("utf-8", "replace")
            raise EndpointError(f"{self.url} answered HTTP {exc.code} for model {self.model!r}: {detail}") from exc
        except (urllib.error.URLError, TimeoutError, ConnectionError, http.client.HTTPException) as exc:
            raise TransientError(f"{type(exc).__name__}: {exc}") from exc
        try:
            content = json.loads(raw)["choices"][0]["message"]["content"]
        except (ValueError, KeyError, IndexError, TypeError) as exc:
            raise TransientError(f"malformed reply: {raw[:80]!r}") from exc
        if not isinstance(content, str):
            raise TransientError("malformed reply: content is not text")
        return content

    def complete(self, messages: prompts.Messages, sampling: Sampling, run: int) -> str:
        """The reply text to ``messages``, retried with exponential backoff; EndpointError on giving up."""
        body = {"model": self.model, "messages": messages, **sampling.body(run)}
        for attempt in range(self.retries + 1):
            try:
                return self._post(body)
            except TransientError as exc:
                if attempt == self.retries:
                    raise EndpointError(f"{self.url} kept failing ({exc}) after {self.retries} retries") from exc
                delay = exc.retry_after
                if delay is None:
                    delay = self.backoff * 2**attempt * (1 + random.random())
                time.sleep(min(delay, self.max_backoff))
        raise AssertionError("unreachable")


def _seconds(value: str | None) -> float | None:
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None


class AnswerCache:
    """Answers on disk as JSONL lines ``{"key", "answer"}``, each appended and fsynced before use.

    A line cut short by a kill is ignored on reading (and counted in ``damaged_lines``).
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._answers: dict[str, str] = {}
        self.damaged_lines = 0
        if self.path.exists():
            for line in self.path.read_text(encoding="utf-8", errors="replace").splitlines():
                try:
                    record = json.loads(line)
                    self._answers[record["key"]] = record["answer"]
                except (ValueError, KeyError, TypeError):
                    self.damaged_lines += 1
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._handle = open(self.path, "a+b")  # noqa: SIM115 - kept open for appends
        self._handle.seek(0, os.SEEK_END)
        if self._handle.tell() > 0:
            self._handle.seek(-1, os.SEEK_END)
            if self._handle.read(1) != b"\n":  # finish a line cut short by a kill
                self._handle.write(b"\n")
        self._lock = threading.Lock()

    def get(self, key: str) -> str | None:
        """The cached answer for ``key``, if any."""
        return self._answers.get(key)

    def put(self, key: str, answer: str) -> None:
        """Append and fsync one answer."""
        line = json.dumps({"key": key, "answer": answer}, ensure_ascii=False).encode("utf-8") + b"\n"
        with self._lock:
            self._handle.write(line)
            self._handle.flush()
            os.fsync(self._handle.fileno())
            self._answers[key] = answer

    def __len__(self) -> int:
        return len(self._answers)

    def close(self) -> None:
        """Close the file."""
        self._handle.close()


def cache_key(messages: prompts.Messages, model: str, sampling: Sampling, run: int) -> str:
    """The cache key of one request: prompt, endpoint model, sampling parameters and run index."""
    canonical = json.dumps(
        {"messages": messages, "model": model, "sampling": asdict(sampling), "run": run}, sort_keys=True
    )
    return hashlib.sha256(canonical.encode()).hexdigest()


class LLMAnnotator:
    """Asks prompts (a), then (b) and (c) for nameable concepts, through a cached endpoint."""

    heuristic = False

    def __init__(
        self, endpoint: ChatEndpoint, cache: AnswerCache, sampling: Sampling, protocol: str = DEFAULT_PROTOCOL
    ) -> None:
        self.endpoint, self.cache, self.sampling, self.protocol = endpoint, cache, sampling, protocol
        self.by_question = question_sampling(sampling, protocol)
        self.requests = 0
        self.cache_hits = 0
        self._count_lock = threading.Lock()

    def describe(self) -> dict:
        """What the manifest records about this annotator (never the API key)."""
        return {
            "annotator": "llm",
            "model": self.endpoint.model,
            "endpoint": self.endpoint.url,
            "protocol": self.protocol,
            # one record when every question samples alike (sound), else one per question (paper)
            **(
                {"sampling": asdict(self.sampling)}
                if self.protocol != "paper"
                else {"sampling_by_question": {q: asdict(s) for q, s in self.by_question.items()}}
            ),
            "heuristic": False,
        }

    def _ask(self, messages: prompts.Messages, run: int, question: str) -> str:
        sampling = self.by_question[question]
        key = cache_key(messages, self.endpoint.model, sampling, run)
        answer = self.cache.get(key)
        if answer is not None:
            with self._count_lock:
                self.cache_hits += 1
            return answer
        answer = self.endpoint.complete(messages, sampling, run)
        self.cache.put(key, answer)
        with self._count_lock:
            self.requests += 1
        return answer

    def label(self, words: list[str], run: int) -> Label:
        """Label one word list for repetition ``run``."""
        label = Label()
        try:
            label.concept = prompts.parse_concept(self._ask(prompts.concept_messages(words), run, "concept"))
            label.status["concept"] = OK
        except prompts.UnparseableAnswer:
            label.status["concept"] = UNPARSEABLE
        if not label.nameable:
            return label
        try:
            label.tasks = prompts.parse_tasks(self._ask(prompts.tasks_messages(label.concept, words), run, "tasks"))
            label.status["tasks"] = OK
        except prompts.UnparseableAnswer:
            label.status["tasks"] = UNPARSEABLE
        try:
            label.level = prompts.parse_level(self._ask(prompts.level_messages(label.concept, words), run, "level"))
            label.status["level"] = OK
        except prompts.UnparseableAnswer:
            label.status["level"] = UNPARSEABLE
        return label


def _summary(labels: dict[tuple[int, int, int], Label], annotator: Annotator, runs: int) -> dict[str, Any]:
    """Counts and per-run shares for the JSON summary."""
    statuses = {
        q: {s: sum(1 for lab in labels.values() if lab.status[q] == s) for s in (OK, UNPARSEABLE, SKIPPED)}
        for q in ("concept", "tasks", "level")
    }
    per_run = []
    for run in range(runs):
        named = [lab for (_, _, r), lab in labels.items() if r == run and lab.nameable]
        total = sum(1 for (_, _, r) in labels if r == run)
        with_tasks = [lab for lab in named if lab.status["tasks"] == OK]
        with_level = [lab for lab in named if lab.status["level"] == OK]
        per_run.append(
            {
                "run": run,
                "nameable_share": len(named) / total if total else None,
                "tasks": {t: _share(sum(t in lab.tasks for lab in with_tasks), len(with_tasks)) for t in prompts.TASKS},
                "levels": {
                    v: _share(sum(lab.level == v for lab in with_level), len(with_level)) for v in prompts.LEVELS
                },
            }
        )
    return {
        **annotator.describe(),
        "runs": runs,
        "n_labels": len(labels),
        "statuses": statuses,
        "per_run": per_run,
    }


def _share(count: int, total: int) -> float | None:
    return count / total if total else None


def default_out(ffn_dir: str | Path) -> Path:
    """Where annotations of an FFN run go unless told otherwise (and where the analysis looks)."""
    return Path(ffn_dir) / "annotations"


def annotate_ffn(
    ffn_dir: str | Path,
    annotator: Annotator,
    settings: AnnotationSettings | None = None,
    *,
    out: str | Path | None = None,
) -> dict[str, Any]:
    """Label the first ``components`` components of every layer of an FFN run, ``runs`` times each.

    Writes ``labels.parquet`` and ``summary.json`` into ``out`` (default ``FFN_DIR/annotations``) and
    returns the summary. For an `LLMAnnotator`, answers already in its cache are not requested again.
    ``settings.annotator`` and ``settings.protocol`` chose ``annotator`` (`build_annotator`).
    """
    from shiftlens.ffn.annotation_settings import AnnotationSettings

    settings = settings or AnnotationSettings()
    runs, concurrency, n_words, components = settings.runs, settings.concurrency, settings.n_words, settings.components
    ffn = read_ffn_run(ffn_dir)
    out = Path(out) if out is not None else default_out(ffn_dir)
    params = {
        "ffn_run": {
            "created": ffn.manifest.get("created"),
            **ffn.manifest["params"],
        },
        "annotator": annotator.describe(),
        "runs": runs,
        "n_words": n_words,
        "components": components,
    }
    jobs = [
        (layer, component, run)
        for layer, record in ffn.layers.items()
        for component in range(min(components or record.components.shape[0], record.components.shape[0]))
        for run in range(runs)
    ]
    heuristic_note = {"heuristic": annotator.heuristic}
    if annotator.heuristic:
        heuristic_note["note"] = "labels from the offline lexical heuristic, not from a language model"
    labels: dict[tuple[int, int, int], Label] = {}
    with RunDirectory(out, KIND, params, heuristic_note) as directory:
        with ThreadPoolExecutor(max_workers=concurrency) as pool:
            futures = {
                pool.submit(annotator.label, ffn.top_words(lay, c, n_words), r): (lay, c, r) for lay, c, r in jobs
            }
            try:
                for future in progress(as_completed(futures), total=len(futures), desc="annotate", unit="label"):
                    labels[futures[future]] = future.result()
            except ShiftlensError as error:
                pool.shutdown(cancel_futures=True)
                raise ShiftlensError(
                    f"{error}; the answers received so far are kept in {out}, rerun to resume"
                ) from error
        write_labels(directory.path / LABELS_FILE, labels, annotator.heuristic)
        summary = _summary(labels, annotator, runs)
        if isinstance(annotator, LLMAnnotator):
            summary["requests"], summary["cache_hits"] = annotator.requests, annotator.cache_hits
        atomic_write_json(directory.path / SUMMARY_FILE, summary)
        directory.update_manifest(complete=True, n_labels=len(labels))
    return summary
