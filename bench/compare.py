"""Cost of each step of `shiftlens compare` on the SmolLM2 LoRA pair: wall time and peak memory per step.

Steps, each in a fresh worker process (model loaded first, not timed; peak RSS from ``getrusage`` and the RSS
growth during the step sampled every 10 ms): ``generate`` (greedy replies of the tuned model, per prompt),
``attribute`` (gradient × input of those replies by the base model, per example, against prompt + response
length), ``heads`` and ``ffn`` (both models, the paper's 26k-word list; heads on 1 and on --heads-layers
layers, so that a flat peak shows the layers are streamed), ``annotate`` (LLM labels of the FFN components
from a stub OpenAI-compatible endpoint in this process, answering at once: the client's own cost). Prompts:
the pair's held-out prompts and the paper's FinalDataset.tsv, alternately.

    .venv/bin/python bench/compare.py --json bench-compare.json [--prompts 12] [--threads 1] [--device cpu]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import numpy as np
from measure import PeakMemory, cpu_seconds, timed  # bench/measure.py, beside this script

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # as the CLI runs (`shiftlens.cli`); workers inherit it

REPO = Path(__file__).resolve().parents[1]
PAPER = REPO.parent / "shared" / "paper-data"
BASE = "smollm2"
PAIR = REPO / "src" / "shiftlens" / "models" / "assets" / "smollm2-lora-demo"  # (--pair) its prompts.jsonl
ADAPTER = "smollm2-lora-demo"  # (--adapter) the step costs do not depend on the adapter's values


def rss() -> int:
    """This process's resident memory in bytes."""
    import psutil

    return psutil.Process().memory_info().rss


def max_rss() -> int:
    """Peak resident memory of this process so far, bytes (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def prompts(n: int, pair_dir: Path) -> list[dict[str, Any]]:
    """n prompts alternating between the pair's held-out prompts and the paper's, as examples' fields."""
    from shiftlens.examples import read_examples

    pair = [json.loads(line) for line in (pair_dir / "prompts.jsonl").read_text().splitlines()]
    paper = read_examples(PAPER / "datasets" / "FinalDataset.tsv")
    mixed: list[dict[str, Any]] = []
    for i in range(n):
        if i % 2 == 0:
            r = pair[i // 2]
            spans = [tuple(s) for s in r["instruction_spans"]]
            mixed.append({"id": r["id"], "prompt": r["prompt"], "instruction": spans})
        else:
            e = paper[i // 2]
            mixed.append({"id": e.id, "prompt": e.prompt, "instruction": e.instruction})
    return mixed


def spec(args: argparse.Namespace, role: str) -> Any:
    from shiftlens.models import ModelSpec

    return ModelSpec(BASE, adapter=args.adapter if role == "tuned" else None, device=args.device, dtype=args.dtype)


def step_generate(args: argparse.Namespace) -> dict[str, Any]:
    """The tuned model's greedy replies, timed per prompt (as `compare` generates them)."""
    from shiftlens.prompting import chat_format, generate, prompt_input

    lm = spec(args, "tuned").load()
    fmt = chat_format(lm.tokenizer, model=lm.model)
    rows = []
    with PeakMemory(args.device) as memory:
        for p in prompts(args.prompts, args.pair):
            start, cpu = time.perf_counter(), cpu_seconds()
            reply = generate(lm.model, fmt, lm.tokenizer, p["prompt"], args.max_new_tokens, p["id"])
            seconds, cpu = time.perf_counter() - start, cpu_seconds() - cpu
            head, _ = prompt_input(fmt, lm.tokenizer, p["prompt"], p["id"])
            n_reply = len(lm.tokenizer(reply, add_special_tokens=False)["input_ids"])
            rows.append({**p, "response": reply, "prompt_tokens": len(head), "response_tokens": n_reply,
                         "seconds": round(seconds, 3), "cpu_seconds": round(cpu, 3)})  # fmt: skip
    return {"examples": rows, "peak_growth": memory.peak}


def step_attribute(args: argparse.Namespace, generated: list[dict[str, Any]]) -> dict[str, Any]:
    """The base model's attribution of the tuned model's replies, per example (the explainer `compare` runs)."""
    from shiftlens.attribution import core
    from shiftlens.prompting import build_sequence, chat_format

    lm = spec(args, "base").load()
    fmt = chat_format(lm.tokenizer, model=lm.model)
    rows = []
    with PeakMemory(args.device) as memory:
        for g in generated:
            seq = build_sequence(lm.model, fmt, lm.tokenizer, g["prompt"], g["response"], g["id"])
            plans: list[Any] = []

            def run(seq: Any = seq, plans: list[Any] = plans) -> Any:
                return core.attribute(
                    lm.model, seq.input_ids, seq.prompt_positions, seq.response_positions, report=plans.append
                )

            seconds, cpu, peak, _ = timed(args.device, run)
            rows.append({"id": g["id"], "tokens": len(seq.input_ids), "prompt_tokens": len(seq.prompt_positions),
                         "response_tokens": len(seq.response_positions), "seconds": round(seconds, 3),
                         "cpu_seconds": round(cpu, 3),
                         "peak_growth": peak, "plan": plans[0].to_json()})  # fmt: skip
    return {"examples": rows, "peak_growth": memory.peak}


def step_method(args: argparse.Namespace, method: str, role: str, layers: tuple[int, ...] | None) -> dict[str, Any]:
    """``shiftlens heads`` or ``ffn`` of one model on the paper's word list (the base streams its layers
    from safetensors; the tuned model, merged with its adapter, is read from memory)."""
    from shiftlens.ffn.pipeline import explain_ffn
    from shiftlens.ffn.settings import FfnSettings
    from shiftlens.heads.pipeline import explain_heads
    from shiftlens.heads.settings import HeadsSettings

    model = spec(args, role)
    vocab = PAPER / "datasets" / "SingleShareGPT_Vocab.tsv"
    out = Path(args.work) / f"{method}-{role}-{len(layers) if layers else 'all'}"
    if method == "heads":
        run = lambda: explain_heads(model, vocab, out, HeadsSettings(layers=layers), force=True)  # noqa: E731
    else:
        run = lambda: explain_ffn(model, vocab, out, FfnSettings(layers=layers), force=True)  # noqa: E731
    before = rss()
    seconds, cpu, peak, _ = timed(args.device, run)
    result = {"seconds": round(seconds, 2), "cpu_seconds": round(cpu, 2), "rss_before": before, "peak_growth": peak}
    result["out"] = str(out)
    if method == "heads":
        result["projection_seconds"] = projection_seconds(model.load() if role == "base" else None, vocab)
    return result


def projection_seconds(lm: Any, vocab: Path) -> float | None:
    """Time of one layer's float64 word projections E·W_qᵀ and E·W_kᵀ (the heads method's matmuls; every query
    head's key expanded), to split a heads layer's time into its V·H·D part and the rest."""
    import torch

    if lm is None:
        return None
    config = lm.model.config
    words = sum(1 for _ in vocab.open(encoding="utf-8"))
    dims = config.num_attention_heads * (config.hidden_size // config.num_attention_heads)
    e = torch.randn(words, config.hidden_size, dtype=torch.float64)
    w = torch.randn(2 * dims, config.hidden_size, dtype=torch.float64)
    best = float("inf")
    for _ in range(3):
        start = time.perf_counter()
        e @ w.T
        best = min(best, time.perf_counter() - start)
    return round(best, 3)


class StubEndpoint:
    """An OpenAI-compatible chat endpoint on localhost that answers every question with one fixed concept."""

    def __init__(self) -> None:
        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def do_POST(self) -> None:
                self.rfile.read(int(self.headers["Content-Length"]))
                body = json.dumps({"choices": [{"message": {"role": "assistant", "content": "Concept: things."}}]})
                data = body.encode()
                self.send_response(200)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def step_annotate(args: argparse.Namespace, ffn_dir: str) -> dict[str, Any]:
    """LLM labels of every layer's first --annotate-components components, --annotate-runs runs, from the stub."""
    from shiftlens.ffn.annotate import annotate_ffn
    from shiftlens.ffn.annotation_settings import AnnotationSettings
    from shiftlens.ffn.annotators import EndpointSettings, build_annotator

    server = StubEndpoint()
    out = Path(args.work) / "annotations"
    try:
        settings = AnnotationSettings(annotator="llm", runs=args.annotate_runs, components=args.annotate_components)
        setup = build_annotator("llm", out, EndpointSettings(endpoint=server.url, model="stub"), settings.runs)
        seconds, cpu, peak, _ = timed(
            "cpu", lambda: annotate_ffn(ffn_dir, setup.annotator, settings, out=out, force=True)
        )
        setup.close()
    finally:
        server.close()
    answers = sum(1 for _ in (out / "answers.jsonl").open()) if (out / "answers.jsonl").exists() else None
    return {"seconds": round(seconds, 2), "cpu_seconds": round(cpu, 2), "peak_growth": peak, "answers": answers}


def worker(args: argparse.Namespace) -> None:
    """One step in this process; its figures as JSON on stdout's last line."""
    import torch

    torch.set_num_threads(args.threads)
    inputs = json.loads(Path(args.inputs).read_text()) if args.inputs else {}
    name = args.worker
    if name == "generate":
        result = step_generate(args)
    elif name == "attribute":
        result = step_attribute(args, inputs["examples"])
    elif name == "annotate":
        result = step_annotate(args, inputs["ffn_dir"])
    else:
        method, role, n = name.split(":")
        layers = None if n == "all" else tuple(range(int(n)))
        result = step_method(args, method, role, layers)
    result["max_rss"] = max_rss()
    print(json.dumps(result))


def run_worker(args: argparse.Namespace, name: str, inputs: dict[str, Any] | None = None) -> dict[str, Any]:
    """Run one step in a fresh process; its JSON figures plus the load average around it."""
    command = [sys.executable, __file__, "--worker", name, "--work", args.work, "--threads", str(args.threads),
               "--device", args.device, "--dtype", args.dtype, "--prompts", str(args.prompts),
               "--max-new-tokens", str(args.max_new_tokens), "--annotate-runs", str(args.annotate_runs),
               "--annotate-components", str(args.annotate_components), "--adapter", args.adapter,
               "--pair", str(args.pair)]  # fmt: skip
    if inputs is not None:
        path = Path(args.work) / f"{name.replace(':', '-')}-inputs.json"
        path.write_text(json.dumps(inputs))
        command += ["--inputs", str(path)]
    load = os.getloadavg()[0]
    start = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, env={**os.environ, "SHIFTLENS_NO_PROGRESS": "1"})
    if done.returncode != 0:
        raise SystemExit(f"step {name} failed:\n{done.stderr[-3000:]}")
    result = json.loads(done.stdout.strip().splitlines()[-1])
    loads = [round(load, 1), round(os.getloadavg()[0], 1)]
    result.update(process_seconds=round(time.perf_counter() - start, 1), load=loads)
    print(f"{name}: {json.dumps({k: v for k, v in result.items() if k != 'examples'})}", flush=True)
    return result


def fit(rows: list[dict[str, Any]]) -> dict[str, float]:
    """Least squares seconds ≈ a + b · (response tokens × sequence tokens): reverse mode costs one backward of
    the sequence per response token, chunked."""
    x = np.array([r["response_tokens"] * r["tokens"] for r in rows], dtype=float)
    y = np.array([r["seconds"] for r in rows])
    design = np.stack([np.ones_like(x), x], 1)
    (a, b), *_ = np.linalg.lstsq(design, y, rcond=None)
    pred = design @ np.array([a, b])
    r2 = 1 - ((y - pred) ** 2).sum() / max(((y - y.mean()) ** 2).sum(), 1e-12)
    return {"a_seconds": round(float(a), 4), "b_seconds_per_token2": float(b), "r2": round(float(r2), 3)}


# Public configs: hidden, layers, query heads, FFN size, vocabulary, parameters (meta-device count), tied embeddings
GEOMETRY = {
    "SmolLM2-135M": (576, 30, 9, 1536, 49152, 134.5e6, True),
    "LLaMA-2-7B": (4096, 32, 32, 11008, 32000, 6.74e9, False),
    "LLaMA-2-13B": (5120, 40, 40, 13824, 32000, 13.02e9, False),
    "LLaMA-2-70B": (8192, 80, 64, 28672, 32000, 68.98e9, False),
}
WORDS = 26497  # the paper's word list
ATTRIBUTION_ANCHOR = 97.0  # CPU s of one 112 + 100-token SmolLM2 attribution, quiet (docs/benchmarks.md, issue 18)
PCA_LAYER = 0.046  # s of one SmolLM2 FFN layer's PCA, quiet (docs/benchmarks.md, FFN)


def body(name: str) -> float:
    """Non-embedding parameters (the embedding counted once when tied, twice with an untied LM head)."""
    h, _, _, _, v, p, tied = GEOMETRY[name]
    return p - v * h * (1 if tied else 2)


def ffn_flops(name: str) -> float:
    """One layer's FFN PCA work: scatter matrix, eigensolver, word scores (R = the scaled default)."""
    h, _, _, i, _, _, _ = GEOMETRY[name]
    r = max(1, (600 * h + 4096) // 8192)
    return 2 * i * h**2 + 9 * h**3 + 2 * r * h * WORDS


def scale(figures: dict[str, Any]) -> list[dict[str, Any]]:
    """Each step's SmolLM2 CPU time scaled to larger models by its work (docs/scale.md states the rules)."""
    small = "SmolLM2-135M"
    h0, l0, q0, _, v0, _, _ = GEOMETRY[small]
    gen = figures["generate"]["examples"]
    per_token = sum(g["cpu_seconds"] for g in gen) / sum(g["prompt_tokens"] + g["response_tokens"] for g in gen)
    n = figures["settings"]["heads_layers"]
    one, more = figures["heads:tuned:1"]["cpu_seconds"], figures[f"heads:tuned:{n}"]["cpu_seconds"]
    heads_layer = (more - one) / (n - 1)
    ffn_fixed = figures["ffn:base:all"]["cpu_seconds"] - l0 * PCA_LAYER
    rows = []
    for name, (h, layers, q, _i, v, p, _tied) in GEOMETRY.items():
        token = 2 * (body(name) + v * h) / (2 * (body(small) + v0 * h0))
        d = h // q
        rows.append(
            {
                "model": name,
                "generate_s_per_token": per_token * token,
                "attribute_s_112x100": ATTRIBUTION_ANCHOR * body(name) / body(small),
                "heads_h": [
                    layers * heads_layer * (q * d) / h0 / 3600,
                    layers * heads_layer * h * q * d / h0**2 / 3600,
                ],
                "ffn_s": ffn_fixed * v * h / (v0 * h0) + layers * PCA_LAYER * ffn_flops(name) / ffn_flops(small),
                "weights_gib_bf16": p * 2 / 2**30,
            }
        )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", type=Path, help="write the figures here")
    parser.add_argument("--prompts", type=int, default=12)
    parser.add_argument("--max-new-tokens", type=int, default=48)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtype", default="float32")
    parser.add_argument("--heads-layers", type=int, default=4, help="layers of the second heads run (1 + this)")
    parser.add_argument("--annotate-runs", type=int, default=5)
    parser.add_argument("--annotate-components", type=int, default=10)
    parser.add_argument("--skip", nargs="*", default=[], help="steps to skip: generate attribute heads ffn annotate")
    parser.add_argument("--adapter", default=ADAPTER, help="the tuned model's adapter (default: the built-in)")
    parser.add_argument("--pair", type=Path, default=PAIR, help="directory of the pair's prompts.jsonl")
    parser.add_argument("--scale", type=Path, help="print the scaled table of a --json file, run nothing")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--work", help=argparse.SUPPRESS)
    parser.add_argument("--inputs", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        return worker(args)
    if args.scale:
        for row in scale(json.loads(args.scale.read_text())):
            print(json.dumps(row))
        return
    args.work = args.work or tempfile.mkdtemp(prefix="bench-compare-")
    import torch

    figures: dict[str, Any] = {
        "machine": {
            "cpu": platform.processor() or platform.machine(),
            "cores": os.cpu_count(),
            "torch": torch.__version__,
            "threads": args.threads,
            "device": args.device,
            "dtype": args.dtype,
            "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        },  # fmt: skip
        "settings": {
            k: str(v) if isinstance(v, Path) else v
            for k, v in vars(args).items()
            if k not in ("json", "worker", "inputs", "scale")
        },
    }
    if "generate" not in args.skip:
        figures["generate"] = run_worker(args, "generate")
    if "attribute" not in args.skip and "generate" in figures:
        figures["attribute"] = run_worker(args, "attribute", {"examples": figures["generate"]["examples"]})
        figures["attribute"]["fit"] = fit(figures["attribute"]["examples"])
    for method in ("heads", "ffn"):
        if method in args.skip:
            continue
        sizes = ("1", str(args.heads_layers)) if method == "heads" else ("all",)
        for role in ("base", "tuned"):
            for n in sizes:
                figures[f"{method}:{role}:{n}"] = run_worker(args, f"{method}:{role}:{n}")
    if "annotate" not in args.skip and "ffn:base:all" in figures:
        figures["annotate"] = run_worker(args, "annotate", {"ffn_dir": figures["ffn:base:all"]["out"]})
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
