"""The LLM annotator: prompts (a), then (b) and (c) for nameable concepts, through a cached endpoint."""

from __future__ import annotations

import threading
from dataclasses import asdict

from shiftlens.evidence import DEFAULT_PROTOCOL
from shiftlens.ffn import prompts
from shiftlens.ffn.answer_cache import AnswerCache, cache_key
from shiftlens.ffn.endpoint import ChatEndpoint, Sampling, question_sampling
from shiftlens.ffn.labels import OK, UNPARSEABLE, Label


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
