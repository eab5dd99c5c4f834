"""Every endpoint answer cached on disk (append-only JSONL, fsynced) under a key of prompt, model, sampling and run.

A rerun or a resumed run therefore sends no request whose answer it already has.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
from dataclasses import asdict
from pathlib import Path

from shiftlens.ffn import prompts
from shiftlens.ffn.endpoint import Sampling

CACHE_FILE = "answers.jsonl"


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
