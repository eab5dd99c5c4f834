"""Benchmark gradient × input attribution on SmolLM2-135M-Instruct: ours vs paper-style, inseq and captum.

Two examples: "main", a real instruction + passage of ~--prompt-tokens tokens and a greedy response of exactly
--response-tokens tokens (112 + 100), every method; and "long", a short prompt with a long response
(--long-prompt-tokens + --long-response-tokens, 30 + 300: the shape of many of the paper's examples), ours in
forward, batched and auto mode. Each method runs once per example in a fresh worker process (model loaded
first, not timed), so timings include each method's first-call warm-up and peak-memory figures are not
polluted by the allocator state other methods left behind. Reported per method: wall time, the worker's CPU
time (user + system of all its threads, `resource.getrusage`), peak memory growth, the load average before
and after, the plan `auto` ran, and agreement with the paper-style reference (or, without it, with batched).

``--background-load K`` starts K busy processes (one core each, pure-Python spin) before the first method and
stops them after the last: each also stops by itself at a deadline, and all are killed when this script
exits, however it exits. The machine is then busy on purpose, as a shared node, a laptop or a shared cluster
job would be. Ours run in the environment the `shiftlens` CLI sets up (``OMP_WAIT_POLICY=PASSIVE``, see
`shiftlens.cli`), the other tools in the default one (``--baseline-env cli`` gives them ours).

    .venv/bin/python bench/attribution.py --json bench-attribution.json [--background-load 2] [--device cuda]
"""

from __future__ import annotations

import argparse
import atexit
import json
import os
import platform
import signal
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import psutil
import torch

CALLER_ENV = set(os.environ)  # before importing shiftlens.cli, which sets OPENMP_ENV in this process's environment

from measure import timed  # noqa: E402  (bench/measure.py, beside this script)

from shiftlens.attribution.core import attribute  # noqa: E402
from shiftlens.attribution.gradients import Padded, final_hidden  # noqa: E402
from shiftlens.attribution.memory import activation_bytes, weight_bytes  # noqa: E402
from shiftlens.attribution.reference import attribute_paper_style  # noqa: E402
from shiftlens.cli import OPENMP_ENV  # noqa: E402
from shiftlens.models import load_model  # noqa: E402

INSTRUCTION = "Read the passage below and explain, in simple words, why the sky looks blue during the day."
PASSAGE = (
    "Sunlight reaches the Earth as a mixture of many colours. When it enters the atmosphere, it meets "
    "molecules of nitrogen and oxygen that are much smaller than the wavelength of visible light. These "
    "molecules scatter light in every direction, and they scatter short wavelengths far more strongly than "
    "long ones, a process described by Lord Rayleigh in the nineteenth century. Blue and violet light are "
    "therefore spread across the whole sky, while red and orange light mostly continue in a straight line. "
    "Our eyes are more sensitive to blue than to violet, and some violet light is absorbed high in the "
    "atmosphere, so the scattered light that reaches us from every part of the sky appears blue. At sunset "
    "the light travels through much more air, most of the blue is scattered away, and the sky turns red."
)


def build_example(lm: Any, prompt_tokens: int, response_tokens: int) -> tuple[torch.Tensor, int, str]:
    """(ids, prompt length, prompt text): the passage cut to fit, then a greedy response.

    A plain-text prompt (no chat template): inseq drops the template's end-of-turn tokens (they are the
    tokenizer's EOS), which would make its input differ from everyone else's.
    """
    tok = lm.tokenizer
    words = PASSAGE.split()
    while True:
        text = f"{INSTRUCTION}\n\nPassage: {' '.join(words)}\n\nAnswer:"
        prompt_ids = tok(text)["input_ids"]
        if len(prompt_ids) <= prompt_tokens or len(words) < 2:
            break
        words = words[:-1]
    device = lm.model.get_input_embeddings().weight.device
    prompt = torch.tensor([prompt_ids], device=device)
    with torch.no_grad():
        out = lm.model.generate(
            prompt,
            attention_mask=torch.ones_like(prompt),
            max_new_tokens=response_tokens,
            min_new_tokens=response_tokens,
            do_sample=False,
            pad_token_id=tok.eos_token_id,
        )
    return out[0].cpu(), len(prompt_ids), text


def target_probabilities(model: Any, ids: torch.Tensor, n_prompt: int) -> torch.Tensor:
    """p(y_j) of every response token, to turn log-probability attributions into probability ones."""
    device = model.get_input_embeddings().weight.device
    with torch.no_grad():
        hidden = final_hidden(model, model.get_input_embeddings()(ids.to(device)))[n_prompt - 1 : -1]
        logprobs = torch.log_softmax(model.get_output_embeddings()(hidden).float(), -1)
    return logprobs.gather(-1, ids[n_prompt:, None].to(device))[:, 0].exp().cpu()


def inseq_call(lm: Any, prompt: str, ids: torch.Tensor, n_prompt: int) -> Callable[[], torch.Tensor]:
    """inseq input_x_gradient with forced decoding of our response; raw scores summed over the hidden dim.

    Importing inseq and wrapping the model happen here, outside the timed call.
    """
    import inseq

    model = inseq.load_model(lm.model, "input_x_gradient", tokenizer=lm.tokenizer)
    full = lm.tokenizer.decode(ids, skip_special_tokens=False)

    def call() -> torch.Tensor:
        out = model.attribute(prompt, full, attributed_fn="probability", show_progress=False, skip_special_tokens=False)
        scores = out.sequence_attributions[0].target_attributions  # (prefix + generated, generated, hidden)
        if scores.shape[0] != len(ids):
            raise RuntimeError(f"inseq tokenized the example into {scores.shape[0]} tokens, not {len(ids)}")
        return scores.sum(-1)[:n_prompt].float()

    return call


def captum_call(lm: Any, prompt: str, ids: torch.Tensor, n_prompt: int) -> Callable[[], torch.Tensor]:
    """captum LLMGradientAttribution + LayerGradientXActivation on the embedding layer (log-probability).

    Importing captum and building the attribution objects happen here, outside the timed call.
    """
    from captum.attr import LayerGradientXActivation, LLMGradientAttribution, TextTokenInput

    method = LLMGradientAttribution(LayerGradientXActivation(lm.model, lm.model.get_input_embeddings()), lm.tokenizer)
    inp = TextTokenInput(prompt, lm.tokenizer)
    if inp.to_tensor().shape[-1] != n_prompt:
        raise RuntimeError(f"captum tokenized the prompt into {inp.to_tensor().shape[-1]} tokens, not {n_prompt}")
    target = ids[n_prompt:].to(lm.model.device)
    return lambda: method.attribute(inp, target=target).token_attr.t().float().cpu()  # (N, M)


def forward_activation_bytes(model: Any, ids: torch.Tensor) -> int:
    """Bytes of activations autograd saves for one forward of the whole sequence (weights not counted)."""
    embeds = model.get_input_embeddings()(ids.to(model.get_input_embeddings().weight.device)).detach()
    return activation_bytes(model, Padded.of([embeds]))


def rel_diff(a: torch.Tensor, b: torch.Tensor) -> float:
    """max |a − b| / max |b|."""
    return float((a - b).abs().max() / b.abs().max())


METHODS: dict[str, str] = {  # name -> objective its scores are computed for
    "ours_auto": "prob",
    "ours_loop": "prob",
    "ours_batched": "prob",
    "ours_forward": "prob",
    "paper": "prob",
    "inseq": "prob",
    "captum": "logprob",
}
LONG_METHODS = ("ours_auto", "ours_batched", "ours_forward")  # paper-style at 30 + 300 would take ~10 min


def method_call(
    name: str, lm: Any, ids: torch.Tensor, n_prompt: int, prompt: str, plans: list
) -> Callable[[], torch.Tensor]:
    """The zero-argument call that runs one benchmarked method on the example and returns (N, M) scores.

    Imports and set-up of third-party tools happen here, before timing. Our modes append the plan they ran
    to ``plans``.
    """
    model, sources, targets = lm.model, torch.arange(n_prompt), torch.arange(n_prompt, len(ids))
    if name.startswith("ours_"):
        mode = name.removeprefix("ours_")
        return lambda: attribute(model, ids, sources, targets, mode=mode, report=plans.append)
    if name == "paper":
        return lambda: attribute_paper_style(model, ids, sources, targets)
    if name == "inseq":
        return inseq_call(lm, prompt, ids, n_prompt)
    return captum_call(lm, prompt, ids, n_prompt)


def worker(name: str, example: Path, out: Path, device: str) -> None:
    """Run one method in this (fresh) process and print a JSON line with its time, peak memory and plan."""
    data = json.loads(example.read_text())
    lm = load_model("smollm2", device=device)
    with torch.no_grad():  # page the memory-mapped weights in, so RSS growth measures the method only
        sum(float(p.sum()) for p in lm.model.parameters())
    plans: list = []
    try:
        call = method_call(name, lm, torch.tensor(data["ids"]), data["n_prompt"], data["prompt"], plans)
        seconds, cpu, peak, result = timed(torch.device(device), call)
    except Exception as exc:  # noqa: BLE001 - a third-party tool failing is a result to report
        print(json.dumps({"error": f"{type(exc).__name__}: {exc}"[:500]}))
        return
    np.save(out, result.float().cpu().numpy(), allow_pickle=False)
    row = {"seconds": round(seconds, 2), "cpu_s": round(cpu, 2), "peak_mib": round(peak / 2**20, 1)}
    if plans:
        row["plan"] = plans[-1].to_json()
    print(json.dumps(row))


def worker_environment(name: str, baseline_env: str) -> dict[str, str]:
    """Ours run in the environment the `shiftlens` CLI sets up (`shiftlens.cli.OPENMP_ENV`: OpenMP threads
    sleep at barriers); the other tools in the default one, as their users run them, unless ``baseline_env``
    is "cli". A variable the caller set explicitly is kept for everyone."""
    env = dict(os.environ)
    for key, value in OPENMP_ENV.items():
        if key in CALLER_ENV:
            continue
        if name.startswith("ours_") or baseline_env == "cli":
            env[key] = value
        else:
            env.pop(key, None)
    return env


def run_worker(name: str, example: Path, out: Path, args: argparse.Namespace) -> dict[str, Any]:
    """Start a fresh process for one method and return its JSON line (or the error it died with)."""
    command = [sys.executable, __file__, "--worker", name, "--example", str(example), "--out", str(out)]
    command += ["--threads", str(args.threads), "--device", args.device]
    env = worker_environment(name, args.baseline_env)
    before = round(os.getloadavg()[0], 2)
    done = subprocess.run(command, capture_output=True, text=True, env=env)
    loads = {
        "load_before": before,
        "load_after": round(os.getloadavg()[0], 2),
        "omp_wait_policy": env.get("OMP_WAIT_POLICY", "default"),
    }
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    if done.returncode or not lines:
        return {"error": f"worker exited {done.returncode}: {done.stderr.strip()[-500:]}", **loads}
    return {**json.loads(lines[-1]), **loads}


SPIN = "import sys, time\ndeadline = time.time() + float(sys.argv[1])\nwhile time.time() < deadline:\n    pass\n"


class BackgroundLoad:
    """K busy processes (one core each) for the duration of a block; each also stops by itself at a deadline."""

    def __init__(self, count: int, deadline_s: float) -> None:
        self.count, self.deadline_s = count, deadline_s
        self.processes: list[subprocess.Popen] = []

    def __enter__(self) -> BackgroundLoad:
        atexit.register(self.stop)  # also on an exception or Ctrl-C in the block
        signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # and on `kill`: exit through atexit
        for _ in range(self.count):
            self.processes.append(subprocess.Popen([sys.executable, "-c", SPIN, str(self.deadline_s)]))
        return self

    def stop(self) -> None:
        """Kill and reap every busy process still running (they are ours: started by this object)."""
        for process in self.processes:
            if process.poll() is None:
                process.kill()
            process.wait()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def contended(row: dict[str, Any], expected_load: float) -> bool:
    """True when the 1-minute load average around the run exceeded what this benchmark itself puts on the
    machine (its threads plus the background processes) by more than one: other jobs were running."""
    return max(row.get("load_before", 0.0), row.get("load_after", 0.0)) > expected_load + 1


def bench_example(
    lm: Any, label: str, prompt_tokens: int, response_tokens: int, methods: list[str], args: argparse.Namespace
) -> dict[str, Any]:
    """Build one example, run every method on it in a fresh worker, print the table, return the summary."""
    ids, n_prompt, prompt = build_example(lm, prompt_tokens, response_tokens)
    probs = target_probabilities(lm.model, ids, n_prompt)
    weights = weight_bytes(lm.model)
    activations = forward_activation_bytes(lm.model, ids)
    print(
        f"\n[{label}] {n_prompt} prompt + {len(ids) - n_prompt} response tokens; weights {weights / 2**20:.0f} MiB, "
        f"one forward's saved activations {activations / 2**20:.0f} MiB",
        flush=True,
    )
    expected_load = args.threads + args.background_load
    rows: dict[str, dict[str, Any]] = {}
    results: dict[str, torch.Tensor] = {}
    with tempfile.TemporaryDirectory() as tmp:
        example = Path(tmp) / "example.json"
        example.write_text(json.dumps({"ids": ids.tolist(), "n_prompt": n_prompt, "prompt": prompt}))
        for name in methods:
            out = Path(tmp) / f"{name}.npy"
            rows[name] = {"objective": METHODS[name], **run_worker(name, example, out, args)}
            rows[name]["contended"] = contended(rows[name], expected_load)
            if "error" in rows[name]:
                print(f"{name:13s} failed: {rows[name]['error']}", flush=True)
                continue
            result = torch.from_numpy(np.load(out))
            results[name] = result * probs if METHODS[name] == "logprob" else result  # ∇p = p ∇log p
            row = rows[name]
            plan = f" [{row['plan']['mode']}, chunk {row['plan']['chunk_size']}]" if "plan" in row else ""
            print(
                f"{name:13s} {row['seconds']:8.2f} s, cpu {row['cpu_s']:8.2f} s, +{row['peak_mib']:.1f} MiB, "
                f"load {row['load_before']:.2f} -> {row['load_after']:.2f}{plan}",
                flush=True,
            )
    reference_name = "paper" if "paper" in results else "ours_batched"
    reference = results.get(reference_name)
    ours = rows.get("ours_auto", {})
    print(
        f"\n{'method':13s} {'wall s':>8s} {'÷ auto':>7s} {'cpu s':>8s} {'÷ auto':>7s} {'peak MiB':>9s} "
        f"{'vs ' + reference_name:>13s} {'load':>11s} {'OpenMP':8s}"
    )
    for name, row in rows.items():
        if "error" in row:
            print(f"{name:13s} {'error':>8s}")
            continue
        if "seconds" in ours:
            row["ratio_to_ours"] = round(row["seconds"] / ours["seconds"], 2)
            row["cpu_ratio_to_ours"] = round(row["cpu_s"] / ours["cpu_s"], 2)
        if reference is not None:
            row[f"max_rel_diff_to_{reference_name}"] = rel_diff(results[name], reference)
        print(
            f"{name:13s} {row['seconds']:8.2f} {row.get('ratio_to_ours', float('nan')):7.2f} "
            f"{row['cpu_s']:8.2f} {row.get('cpu_ratio_to_ours', float('nan')):7.2f} "
            f"{row['peak_mib']:9.1f} {row.get(f'max_rel_diff_to_{reference_name}', float('nan')):13.2e} "
            f"{row['load_before']:5.2f}-{row['load_after']:<5.2f} {row['omp_wait_policy']:8s}"
            f"{' contended' if row['contended'] else ''}"
        )
    summary: dict[str, Any] = {
        "prompt_tokens": n_prompt,
        "response_tokens": len(ids) - n_prompt,
        "weights_mib": round(weights / 2**20, 1),
        "forward_activations_mib": round(activations / 2**20, 1),
        "methods": rows,
    }
    if "peak_mib" in ours:
        peak = ours["peak_mib"] * 2**20
        summary["ours_memory_ratio"] = round((weights + peak) / (weights + activations), 3)
        print(f"auto: (weights + peak growth) / (weights + one forward's activations) = {summary['ours_memory_ratio']}")
    return summary


def main() -> None:
    """Run every method on the examples (each in a fresh process), optionally under background load."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", help="write the results here")
    parser.add_argument("--prompt-tokens", type=int, default=112)
    parser.add_argument("--response-tokens", type=int, default=100)
    parser.add_argument("--long-prompt-tokens", type=int, default=30)
    parser.add_argument("--long-response-tokens", type=int, default=300)
    parser.add_argument("--examples", nargs="*", default=["main", "long"], choices=["main", "long"])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--skip", nargs="*", default=[], choices=list(METHODS), help="methods to leave out")
    parser.add_argument(
        "--background-load", type=int, default=0, metavar="K", help="run K busy processes during the benchmark"
    )
    parser.add_argument(
        "--background-deadline",
        type=float,
        default=3600.0,
        metavar="S",
        help="each busy process stops by itself after S seconds at the latest (default 3600)",
    )
    parser.add_argument(
        "--baseline-env",
        choices=["default", "cli"],
        default="default",
        help="environment of paper-style, inseq and captum: the default, or the shiftlens CLI's (OMP_WAIT_POLICY)",
    )
    parser.add_argument("--worker", choices=list(METHODS), help=argparse.SUPPRESS)
    parser.add_argument("--example", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args.worker:
        worker(args.worker, args.example, args.out, args.device)
        return
    lm = load_model("smollm2", device=args.device)
    memory_gib = psutil.virtual_memory().total / 2**30
    summary: dict[str, Any] = {
        "machine": f"{platform.machine()}, {psutil.cpu_count()} CPUs, {memory_gib:.0f} GiB",
        "device": args.device,
        "threads": args.threads,
        "background_load": args.background_load,
        "baseline_env": args.baseline_env,
        "load_average_start": [round(x, 2) for x in os.getloadavg()],
    }
    print(
        f"SmolLM2-135M-Instruct on {args.device}, {args.threads} threads, {args.background_load} busy background "
        f"processes; load average {summary['load_average_start']}"
    )
    shapes = {
        "main": (args.prompt_tokens, args.response_tokens, list(METHODS)),
        "long": (args.long_prompt_tokens, args.long_response_tokens, list(LONG_METHODS)),
    }
    with BackgroundLoad(args.background_load, args.background_deadline):
        for label in args.examples:
            prompt_tokens, response_tokens, methods = shapes[label]
            methods = [m for m in methods if m not in args.skip]
            summary[label] = bench_example(lm, label, prompt_tokens, response_tokens, methods, args)
    summary["load_average_end"] = [round(x, 2) for x in os.getloadavg()]
    if args.json:
        Path(args.json).write_text(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
