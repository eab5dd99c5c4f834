"""Annotation against a real chat-completions server on loopback: faults, cache, kill and resume, secrets."""

from __future__ import annotations

import hashlib
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
from test_ffn_analysis import write_fake_ffn_run

from shiftlens.cli.main import main
from shiftlens.errors import ShiftlensError
from shiftlens.ffn import prompts
from shiftlens.ffn.annotate import AnswerCache, ChatEndpoint, LLMAnnotator, Sampling, annotate_ffn, cache_key
from shiftlens.ffn.annotation_settings import AnnotationSettings

REPO = Path(__file__).resolve().parents[1]
SECRET = "sk-test-do-not-store-9f3a"


def _digest(text: str) -> int:
    return int(hashlib.sha256(text.encode()).hexdigest(), 16)


def reply_for(body: dict) -> str:
    """The server's deterministic answer to a request (depends on the prompt and the seed only)."""
    system, query = body["messages"][0]["content"], body["messages"][-1]["content"]
    h = _digest(query + str(body["seed"]))
    if "pushes its predictions" in system:
        return [
            "Concept: cannot tell",
            "I think these are animals.",
            f"Concept: topic {h % 5}",
            "**Concept:** ok",
        ][h % 4]
    if "kinds of user request" in system:
        return ["Tasks: none", "Tasks: coding, math", "Tasks: daily writing", "Tasks: cooking"][h % 4]
    return ["Level: semantics", "Level: syntax", "Level: morphology", "Level: pragmatics"][h % 4]


def question_of(body: dict) -> str:
    """Which of the three prompts a request is."""
    system = body["messages"][0]["content"]
    if "pushes its predictions" in system:
        return "concept"
    return "tasks" if "kinds of user request" in system else "level"


class ChatServer:
    """A loopback chat-completions server counting requests per cache key, with optional faults.

    ``faults`` maps a key digest residue to the fault the first request of such a key gets:
    429, 503, a malformed body or a reply slower than the client's timeout.
    """

    def __init__(self, faults: bool = False, delay: float = 0.0, status: int | None = None):
        self.counts: dict[str, int] = {}
        self.lock = threading.Lock()
        self.faults, self.delay, self.status = faults, delay, status
        self.kill_pid: int | None = None
        self.kill_after: int | None = None
        self.authorization: set[str] = set()
        self.sampled: set[tuple[str, float]] = set()  # (question, temperature) of every request
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # quiet
                pass

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                key = cache_key(
                    body["messages"],
                    body["model"],
                    Sampling(body["temperature"], body["top_p"], body["max_tokens"]),
                    body["seed"],
                )
                with server.lock:
                    server.counts[key] = attempt = server.counts.get(key, 0) + 1
                    server.authorization.add(self.headers.get("Authorization", ""))
                    server.sampled.add((question_of(body), body["temperature"]))
                    total = sum(server.counts.values())
                    if server.kill_after is not None and total == server.kill_after:
                        os.kill(server.kill_pid, signal.SIGKILL)
                time.sleep(server.delay)
                if server.status is not None:
                    return self._send(server.status, b'{"error": "nope"}')
                fault = _digest(key) % 6 if server.faults and attempt == 1 else None
                if fault == 0:
                    return self._send(429, b"{}", {"Retry-After": "0"})
                if fault == 1:
                    return self._send(503, b"busy")
                if fault == 2:
                    return self._send(200, b'{"choices": [')
                if fault == 3:
                    time.sleep(1.0)  # the client gives up after 0.3 s
                content = reply_for(body)
                payload = {"choices": [{"message": {"role": "assistant", "content": content}}]}
                self._send(200, json.dumps(payload).encode())

            def _send(self, code, data, headers=None):
                try:
                    self.send_response(code)
                    for name, value in (headers or {}).items():
                        self.send_header(name, value)
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):
                    pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def total(self) -> int:
        return sum(self.counts.values())

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture()
def server():
    instance = ChatServer()
    yield instance
    instance.close()


@pytest.fixture()
def ffn_dir(tmp_path):
    rng = np.random.default_rng(0)
    comps = {layer: np.linalg.qr(rng.standard_normal((40, 6)))[0].T for layer in (0, 1)}
    write_fake_ffn_run(tmp_path / "ffn", comps, n_layers=2)
    return tmp_path / "ffn"


def llm(url, cache_path, **kwargs) -> LLMAnnotator:
    endpoint = ChatEndpoint(url, "test-model", timeout=kwargs.pop("timeout", 5.0), backoff=0.01, **kwargs)
    return LLMAnnotator(endpoint, AnswerCache(cache_path), Sampling(temperature=0.5))


def labels_of(path: Path) -> list[dict]:
    return pq.read_table(path / "labels.parquet").to_pylist()


def test_parsers_on_hand_answers():
    assert prompts.parse_concept("Concept: fruits.") == "fruits"
    assert prompts.parse_concept("Sure!\n**Concept:** Python keywords") == "Python keywords"
    assert prompts.parse_concept("Concept: Cannot tell") is None
    assert prompts.parse_concept("concept: can't tell.") is None
    assert prompts.parse_tasks("Tasks: coding, Math") == ["math", "coding"]
    assert prompts.parse_tasks("Tasks: daily writing and translation") == ["daily writing", "translation"]
    assert prompts.parse_tasks("Tasks: none") == []
    assert prompts.parse_level("Level: Syntax") == "syntax"
    for parse, answer in (
        (prompts.parse_concept, "fruits"),
        (prompts.parse_tasks, "Tasks: cooking"),
        (prompts.parse_tasks, "Tasks: coding, gardening"),
        (prompts.parse_level, "Level: pragmatics"),
    ):
        with pytest.raises(prompts.UnparseableAnswer):
            parse(answer)


def test_prompts_ask_for_the_documented_things():
    messages = prompts.concept_messages(["a", "b"])
    assert messages[0]["role"] == "system" and "fewer than half" in messages[0]["content"]
    assert messages[-1] == {"role": "user", "content": "a, b"}
    assert len(messages) == 2 + 2 * len(prompts.CONCEPT_EXAMPLES)
    for task in prompts.TASKS:
        assert task in prompts.TASKS_SYSTEM
    for level in prompts.LEVELS:
        assert level in prompts.LEVEL_SYSTEM


def test_labels_chain_and_cache_hit_on_rerun(server, ffn_dir, tmp_path):
    out = tmp_path / "ann"
    settings = AnnotationSettings(runs=3, concurrency=4)
    assert annotate_ffn(ffn_dir, llm(server.url, out / "answers.jsonl"), settings, out=out) == out
    summary = json.loads((out / "summary.json").read_text())
    rows = labels_of(out)
    assert len(rows) == 2 * 6 * 3 and summary["requests"] == server.total()
    # every label follows the server's deterministic replies
    for r in rows:
        words = [
            f"w{i}"
            for i in np.argsort(-np.abs(read_components(ffn_dir, r["layer"])[r["component"], :40]), kind="stable")[:15]
        ]
        answer = reply_for({"messages": prompts.concept_messages(words), "seed": r["run"]})
        if answer.startswith("I think"):
            assert r["concept_status"] == "unparseable" and not r["nameable"]
        elif "cannot tell" in answer:
            assert r["concept_status"] == "ok" and not r["nameable"] and r["tasks_status"] == "skipped"
        else:
            assert r["nameable"] and r["concept"] == prompts.parse_concept(answer)
            tasks = reply_for({"messages": prompts.tasks_messages(r["concept"], words), "seed": r["run"]})
            assert r["tasks_status"] == ("unparseable" if "cooking" in tasks else "ok")
    unparseable = summary["statuses"]["concept"]["unparseable"]
    assert unparseable == sum(r["concept_status"] == "unparseable" for r in rows) > 0
    assert max(server.counts.values()) == 1
    before = server.total()
    (out / "units" / "layer-0001.json").unlink()  # as if killed before layer 1 was recorded
    annotate_ffn(ffn_dir, llm(server.url, out / "answers.jsonl"), settings, out=out)
    again = json.loads((out / "summary.json").read_text())
    asked_for_layer_1 = sum(1 for key in server.counts if key)  # every answer is in the cache
    assert server.total() == before and again["requests"] == 0 and 0 < again["cache_hits"] < asked_for_layer_1
    assert labels_of(out) == rows
    annotate_ffn(ffn_dir, llm(server.url, out / "answers.jsonl"), settings, out=out)  # all stored: nothing asked
    assert json.loads((out / "summary.json").read_text())["cache_hits"] == 0 and labels_of(out) == rows


def read_components(ffn_dir, layer):
    from shiftlens.ffn.records import read_ffn_run

    return read_ffn_run(ffn_dir).layers[layer].components


def test_retries_on_429_5xx_timeouts_and_malformed_replies(ffn_dir, tmp_path):
    clean, faulty = ChatServer(), ChatServer(faults=True)
    try:
        annotate_ffn(
            ffn_dir, llm(clean.url, tmp_path / "a.jsonl"), AnnotationSettings(runs=2, concurrency=4), out=tmp_path / "a"
        )
        annotate_ffn(
            ffn_dir,
            llm(faulty.url, tmp_path / "b.jsonl", timeout=0.3),
            AnnotationSettings(runs=2, concurrency=4),
            out=tmp_path / "b",
        )
    finally:
        clean.close()
        faulty.close()
    assert labels_of(tmp_path / "a") == labels_of(tmp_path / "b")
    assert set(faulty.counts) == set(clean.counts)
    for key, count in faulty.counts.items():
        assert count == (2 if int(hashlib.sha256(key.encode()).hexdigest(), 16) % 6 < 4 else 1)
    assert any(count == 2 for count in faulty.counts.values())


def test_persistent_failure_and_refusal_are_clear_errors(ffn_dir, tmp_path):
    for status, message in ((503, "kept failing (HTTP 503) after 1 retries"), (401, "answered HTTP 401")):
        failing = ChatServer(status=status)
        try:
            with pytest.raises(ShiftlensError, match=re.escape(message)) as info:
                annotate_ffn(ffn_dir, llm(failing.url, tmp_path / "c.jsonl", retries=1), out=tmp_path / f"c{status}")
        finally:
            failing.close()
        assert "rerun to resume" in str(info.value)
        assert max(failing.counts.values()) == (2 if status == 503 else 1)


def test_api_key_is_sent_but_never_written(ffn_dir, tmp_path, monkeypatch, server, capsys):
    monkeypatch.setenv("SHIFTLENS_API_KEY", SECRET)
    out = tmp_path / "keyed"
    code = main(["annotate", str(ffn_dir), "--endpoint", server.url + "/chat/completions", "--model", "m",
                 "--runs", "1", "--out", str(out), "--backoff", "0.01"])  # fmt: skip
    assert code == 0
    assert server.authorization == {f"Bearer {SECRET}"}
    for path in out.rglob("*"):
        if path.is_file():
            assert SECRET.encode() not in path.read_bytes(), path
    assert SECRET not in capsys.readouterr().out
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["params"]["annotator"]["sampling"] == {"temperature": 0.7, "top_p": 1.0, "max_tokens": 48}
    assert manifest["heuristic"] is False


def test_paper_protocol_samples_concepts_at_1_and_tasks_and_levels_at_0(ffn_dir, tmp_path, server, capsys):
    command = ["annotate", str(ffn_dir), "--endpoint", server.url, "--model", "m", "--runs", "2",
               "--backoff", "0.01", "--protocol", "paper"]  # fmt: skip
    assert main([*command, "--out", str(tmp_path / "paper")]) == 0
    assert server.sampled == {("concept", 1.0), ("tasks", 0.0), ("level", 0.0)}
    annotator = json.loads((tmp_path / "paper" / "manifest.json").read_text())["params"]["annotator"]
    assert annotator["protocol"] == "paper" and "sampling" not in annotator
    assert {q: s["temperature"] for q, s in annotator["sampling_by_question"].items()} == {
        "concept": 1.0,
        "tasks": 0.0,
        "level": 0.0,
    }
    server.sampled.clear()
    assert main([*command[:-2], "--out", str(tmp_path / "sound"), "--temperature", "0.3"]) == 0
    assert {t for _, t in server.sampled} == {0.3}  # sound: one temperature for every question
    assert main([*command, "--out", str(tmp_path / "x"), "--temperature", "0.3"]) == 2
    assert "--protocol paper fixes the temperatures" in capsys.readouterr().err


def test_damaged_cache_line_is_ignored(tmp_path):
    path = tmp_path / "answers.jsonl"
    cache = AnswerCache(path)
    cache.put("k1", "Concept: a")
    cache.close()
    with open(path, "ab") as handle:
        handle.write(b'{"key": "k2", "ans')  # a kill in the middle of a line
    cache = AnswerCache(path)
    assert cache.get("k1") == "Concept: a" and cache.get("k2") is None and cache.damaged_lines == 1
    cache.put("k3", "Level: syntax")
    cache.close()
    assert AnswerCache(path).get("k3") == "Level: syntax"


def _annotate_command(ffn_dir, url, out):
    return [sys.executable, "-m", "shiftlens.cli.main", "annotate", str(ffn_dir), "--endpoint", url,
            "--model", "test-model", "--runs", "3", "--concurrency", "4", "--out", str(out)]  # fmt: skip


def test_kill_and_resume_gives_the_uninterrupted_labels_without_repeating_requests(ffn_dir, tmp_path):
    env = {**os.environ, "SHIFTLENS_NO_PROGRESS": "1"}
    reference = ChatServer()
    try:
        subprocess.run(_annotate_command(ffn_dir, reference.url, tmp_path / "whole"), env=env, check=True)
    finally:
        reference.close()
    total = reference.total()
    server = ChatServer(delay=0.01)
    try:
        process = subprocess.Popen(_annotate_command(ffn_dir, server.url, tmp_path / "killed"), env=env)
        server.kill_pid, server.kill_after = process.pid, total // 2
        assert process.wait(timeout=120) == -signal.SIGKILL
        cache = AnswerCache(tmp_path / "killed" / "answers.jsonl")
        cached = {key for key in server.counts if cache.get(key) is not None}
        cache.close()
        before = dict(server.counts)
        assert 0 < len(cached) < total
        subprocess.run(_annotate_command(ffn_dir, server.url, tmp_path / "killed"), env=env, check=True)
    finally:
        server.close()
    assert labels_of(tmp_path / "killed") == labels_of(tmp_path / "whole")
    assert set(server.counts) == set(reference.counts)
    for key in cached:  # an answer that reached the cache is never asked for again
        assert server.counts[key] == 1
    repeated = [key for key, count in server.counts.items() if count > 1]
    assert all(key in before and key not in cached for key in repeated)  # only requests in flight at the kill
    assert len(repeated) <= 4  # at most --concurrency were in flight
    assert all(count <= 2 for count in server.counts.values())
