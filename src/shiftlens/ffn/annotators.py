"""Builds the annotator a run asks for (offline lexical heuristic or an OpenAI-compatible LLM endpoint).

Shared by `shiftlens annotate` and `shiftlens compare`, so both accept the same choices and defaults.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from shiftlens.config import setting
from shiftlens.errors import ShiftlensError, warn
from shiftlens.evidence import DEFAULT_PROTOCOL
from shiftlens.ffn.answer_cache import CACHE_FILE, AnswerCache
from shiftlens.ffn.endpoint import PROBE_TIMEOUT, ChatEndpoint, Sampling, api_key_from_environment, check_url, probe

if TYPE_CHECKING:
    from shiftlens.ffn.labels import Annotator

KINDS = ("lexical", "llm", "openai")  # "openai" = "llm": any OpenAI-compatible chat-completions endpoint


@dataclass(frozen=True)
class EndpointSettings:
    """How to reach an LLM annotator and sample from it (the API key comes from the environment only)."""

    endpoint: str | None = setting(
        None, "OpenAI-compatible base URL (.../v1) or full .../chat/completions URL; key from SHIFTLENS_API_KEY"
    )
    model: str | None = setting(None, "model name the endpoint serves", metavar="NAME")
    timeout: float = setting(60.0, "seconds per request", identity=False)
    retries: int = setting(6, "retries on 429, 5xx, timeouts", identity=False)
    backoff: float = setting(1.0, "first retry delay in seconds (doubles)", identity=False)
    sampling: Sampling = setting(Sampling(), "sampling parameters of every request")


@dataclass
class AnnotatorSetup:
    """An annotator, how many runs it should make, and the answer cache to close afterwards (LLM only)."""

    annotator: Annotator
    runs: int
    cache: AnswerCache | None = None

    def close(self) -> None:
        """Flush and close the answer cache, if any."""
        if self.cache is not None:
            self.cache.close()


def check_annotator(kind: str | None, settings: EndpointSettings) -> None:
    """Fail fast, before any run directory exists, on an annotator that cannot work: an unknown kind, no
    endpoint, an endpoint that is not a URL or does not answer (probed once); endpoint settings that the
    lexical annotator (or none) would ignore are named in a warning."""
    if kind is None or kind == "lexical":
        ignored = [name for name in ("endpoint", "model") if getattr(settings, name)]
        if ignored:
            warn(
                f"the {kind or 'absent'} annotator ignores the endpoint settings {', '.join(ignored)}; "
                "choose the llm annotator to label with that endpoint"
            )
    check_endpoint(kind, settings)


def check_endpoint(kind: str | None, settings: EndpointSettings) -> None:
    """An LLM annotator's kind and endpoint (probed once); nothing to check for the lexical one or none. The
    command line asks this before torch loads, so that a dead endpoint fails at once."""
    if kind is None or kind == "lexical":
        return
    require_endpoint(kind, settings)
    _probe_once(check_url(settings.endpoint), api_key_from_environment())


def require_endpoint(kind: str | None, settings: EndpointSettings) -> None:
    """An LLM annotator's kind is known and its endpoint and model are named (nothing is contacted)."""
    if kind is None or kind == "lexical":
        return
    if kind not in KINDS:
        raise ShiftlensError(f"unknown annotator {kind!r}; choose one of {', '.join(KINDS)}")
    if not settings.endpoint or not settings.model:
        raise ShiftlensError(
            f"--annotator {kind} needs --annotator-endpoint and --annotator-model (or use --annotator lexical)"
        )


@functools.cache
def _probe_once(endpoint: str, api_key: str | None) -> None:
    """`probe` an endpoint once per process (a failure is not cached: it raises)."""
    probe(ChatEndpoint(endpoint, "").url, api_key, PROBE_TIMEOUT)


def build_annotator(
    kind: str,
    out: str | Path,
    settings: EndpointSettings,
    runs: int = 5,
    cache: str | Path | None = None,
    protocol: str = DEFAULT_PROTOCOL,
) -> AnnotatorSetup:
    """The annotator of ``kind``; an LLM one caches its answers in ``cache`` (default OUT/answers.jsonl).

    Under the paper ``protocol`` an LLM annotator samples each question at the authors' temperatures.
    """
    from shiftlens.ffn.lexical import LexicalAnnotator
    from shiftlens.ffn.llm_annotator import LLMAnnotator

    check_annotator(kind, settings)
    if kind == "lexical":
        return AnnotatorSetup(LexicalAnnotator(), 1)
    endpoint = ChatEndpoint(
        settings.endpoint,
        settings.model,
        api_key=api_key_from_environment(),
        timeout=settings.timeout,
        retries=settings.retries,
        backoff=settings.backoff,
    )
    answers = AnswerCache(Path(cache) if cache else Path(out) / CACHE_FILE)
    return AnnotatorSetup(LLMAnnotator(endpoint, answers, settings.sampling, protocol), runs, answers)
