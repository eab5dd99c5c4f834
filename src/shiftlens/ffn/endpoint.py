"""A minimal OpenAI-compatible chat-completions client (stdlib only): retries with backoff, sampling settings.

Requests are retried with backoff on 429, 5xx, timeouts and malformed replies; the API key comes from the
environment only and is never stored.
"""

from __future__ import annotations

import http.client
import json
import os
import random
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, replace
from typing import Any

from shiftlens.config import setting
from shiftlens.errors import ShiftlensError
from shiftlens.evidence import DEFAULT_PROTOCOL, check_protocol
from shiftlens.ffn import prompts

API_KEY_VARIABLES = ("SHIFTLENS_API_KEY", "OPENAI_API_KEY")


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


PROBE_TIMEOUT = 2.0  # seconds: the one request that tells a dead endpoint before any work


def check_url(endpoint: str) -> str:
    """``endpoint`` if it is an http(s) URL with a host, else a one-line error."""
    url = urllib.parse.urlparse(endpoint)
    if url.scheme not in ("http", "https") or not url.hostname:
        raise EndpointError(f"endpoint {endpoint!r} is not an http:// or https:// URL (e.g. http://localhost:8000/v1)")
    return endpoint


def probe(url: str, api_key: str | None = None, timeout: float = PROBE_TIMEOUT) -> None:
    """One cheap request (GET .../models) before any work: no connection, or a refused key, is an error at once.

    Any other HTTP answer (404 from a server without ``/models`` included) shows the server is there; a
    server slower than ``timeout`` is left to the real requests and their retries.
    """
    models = url.removesuffix("/chat/completions").rstrip("/") + "/models"
    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    try:
        urllib.request.urlopen(urllib.request.Request(models, headers=headers), timeout=timeout).close()
    except urllib.error.HTTPError as exc:
        if exc.code in (401, 403):
            raise EndpointError(
                f"{url} refused the API key (HTTP {exc.code}); set {' or '.join(API_KEY_VARIABLES)}"
            ) from exc
    except TimeoutError:
        return
    except (urllib.error.URLError, ConnectionError, http.client.HTTPException) as exc:
        reason = getattr(exc, "reason", exc)
        if isinstance(reason, TimeoutError):
            return
        raise EndpointError(f"cannot reach the endpoint {url} ({reason}); is the server running?") from exc


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
