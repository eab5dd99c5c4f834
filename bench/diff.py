"""Benchmark `shiftlens diff` on SmolLM2-135M-Instruct: the weight map against a rank-8 LoRA, and the per-token part.

1. The weight map of ``smollm2`` vs itself + a rank-8 LoRA (alpha 16, random B, seeded) on every layer's q_proj
   and v_proj, through ``shiftlens diff smollm2 smollm2 --tuned-adapter A --weights-only`` in a subprocess:
   wall time and peak RSS, beside the RSS of a subprocess that only opens the model's weights (interpreter,
   torch, tokenizer, config: what the map starts from), and the size of two layers' weights (the target is
   peak ≤ that baseline + 2 layers + 200 MB). The map itself is checked: non-zero deltas on exactly q and v.
2. Per-token divergence: for the first N organism prompts (their own responses), the time of the diff's
   per-example work (`TokensJob.compute`) against plain forwards of both models on the same ids, in one process.

Run: ``.venv/bin/python bench/diff.py [--json PATH] [--examples N]``.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pyarrow.parquet as pq
import torch
from safetensors.torch import save_file

RANK, ALPHA, TARGETS = 8, 16, ("q_proj", "v_proj")
OPEN_ONLY = "from shiftlens.models import weight_source; weight_source('smollm2')"


def build_adapter(directory: Path, config, seed: int = 0) -> Path:
    """A PEFT-format LoRA adapter of ``config``'s model: rank 8 on q_proj and v_proj, A and B random (seeded)."""
    g = torch.Generator().manual_seed(seed)
    head_dim = config.hidden_size // config.num_attention_heads
    out = {"q_proj": config.num_attention_heads * head_dim, "v_proj": config.num_key_value_heads * head_dim}
    tensors = {}
    for layer in range(config.num_hidden_layers):
        for module in TARGETS:
            key = f"base_model.model.model.layers.{layer}.self_attn.{module}"
            tensors[f"{key}.lora_A.weight"] = (
                torch.randn(RANK, config.hidden_size, generator=g) / config.hidden_size**0.5
            )
            tensors[f"{key}.lora_B.weight"] = torch.randn(out[module], RANK, generator=g) * 0.01
    directory.mkdir(parents=True, exist_ok=True)
    save_file(tensors, str(directory / "adapter_model.safetensors"))
    adapter = {"peft_type": "LORA", "r": RANK, "lora_alpha": ALPHA, "target_modules": list(TARGETS)}
    (directory / "adapter_config.json").write_text(json.dumps(adapter))
    return directory


def timed(command: list[str]) -> tuple[float, float, float]:
    """(wall seconds, peak RSS in MiB, CPU seconds) of a command run to completion in a fresh process."""
    start = time.perf_counter()
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if after.ru_maxrss <= before.ru_maxrss:  # the largest child so far: measure each command in its own helper
        raise RuntimeError("run each timed command from a fresh helper process")
    cpu = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
    return time.perf_counter() - start, after.ru_maxrss / 1024, cpu


def measure(command: list[str]) -> tuple[float, float, float]:
    """`timed` in a fresh helper process, so that each command's peak RSS is its own."""
    helper = f"import json, sys; sys.path.insert(0, {str(Path(__file__).parent)!r}); import diff; "
    helper += f"print(json.dumps(diff.timed({command!r})))"
    out = subprocess.run([sys.executable, "-c", helper], check=True, capture_output=True, text=True).stdout
    wall, rss, cpu = json.loads(out.strip().splitlines()[-1])
    return wall, rss, cpu


def layer_mib(config) -> float:
    """MiB of one layer's weights in float32 (q, k, v, o, gate, up, down and the two norms)."""
    h, f = config.hidden_size, config.intermediate_size
    kv = config.num_key_value_heads * (h // config.num_attention_heads)
    return 4 * (2 * h * h + 2 * h * kv + 3 * h * f + 2 * h) / 2**20


def weight_map(config, tmp: Path) -> dict[str, float]:
    """Part 1 (module doc)."""
    adapter = build_adapter(tmp / "adapter", config)
    command = [sys.executable, "-m", "shiftlens.cli.main", "diff", "smollm2", "smollm2", "--tuned-adapter"]
    command += [str(adapter), "--weights-only", "--out", str(tmp / "map")]
    _, baseline, _ = measure([sys.executable, "-c", OPEN_ONLY])
    wall, peak, cpu = measure(command)
    table = pq.read_table(tmp / "map" / "weights.parquet").to_pydict()
    rows = list(zip(table["module"], table["head"], table["rel_frobenius"], table["effective_rank"]))
    changed = {m for m, h, r, _ in rows if h == -1 and r > 0}
    assert changed == {"q", "v"}, changed
    assert max(rank for m, h, _, rank in rows if h == -1) <= RANK
    budget = 2 * layer_mib(config) + 200
    print(f"weight map: {wall:.1f} s wall, {cpu:.1f} s CPU, peak RSS {peak:.0f} MiB = {baseline:.0f} MiB opening "
          f"the weights + {peak - baseline:.0f} MiB (targets 60 s, +{budget:.0f} MiB)")  # fmt: skip
    return {"wall_s": wall, "cpu_s": cpu, "peak_rss_mib": peak, "open_rss_mib": baseline, "budget_mib": budget}


def in_process(adapter: Path, out: Path) -> dict[str, float]:
    """The map's own memory: RSS just before `diff_weights` (everything imported, the weights opened once, so
    that torch, transformers and the tokenizer are counted before) and the peak after it."""
    from shiftlens.diff.run import diff_weights
    from shiftlens.models import weight_source

    weight_source("smollm2")
    before = int(Path("/proc/self/statm").read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
    start, cpu = time.perf_counter(), time.process_time()
    diff_weights("smollm2", None, out, adapter=adapter)
    wall = time.perf_counter() - start
    return {
        "wall_s": wall,
        "cpu_s": time.process_time() - cpu,
        "rss_before_mib": before,
        "peak_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def tokens(n: int, tmp: Path) -> dict[str, float]:
    """Part 2 (module doc): two plain forwards per example, the divergence alone, and the whole unit."""
    from shiftlens import organism
    from shiftlens.diff.divergence import response_logits, token_divergence
    from shiftlens.diff.tokens import TokensJob
    from shiftlens.examples import load_examples
    from shiftlens.models import load_model
    from shiftlens.prompting import build_sequence

    examples = load_examples(organism.prompts_path(), None, n)
    base, tuned = load_model("smollm2"), load_model("smollm2", adapter=str(tmp / "adapter"))
    job = TokensJob(base, tuned, examples)
    job.prepare(job.units())
    times = {"two_forwards_s": 0.0, "divergence_s": 0.0, "unit_s": 0.0}
    for unit in job.units():
        example = job.examples[unit.key]
        seq = build_sequence(tuned.model, job.fmt, tuned.tokenizer, example.prompt, example.response, example.id)
        ids, positions = seq.input_ids, seq.response_positions
        start = time.perf_counter()
        with torch.no_grad():
            for lm in (base, tuned):
                lm.model(input_ids=ids[None])
        times["two_forwards_s"] += time.perf_counter() - start
        start = time.perf_counter()
        token_divergence(*(response_logits(lm.model, ids, positions) for lm in (base, tuned)), ids[positions])
        times["divergence_s"] += time.perf_counter() - start
        start = time.perf_counter()
        job.compute(unit)
        times["unit_s"] += time.perf_counter() - start
    forwards, alone = times["two_forwards_s"], times["divergence_s"]
    print(f"per-token, {n} examples: two plain forwards {forwards:.2f} s; divergence alone {alone:.2f} s "
          f"({alone / forwards:.2f} ×, target ≤ 1); whole unit with both logit lenses and the null "
          f"{times['unit_s']:.2f} s ({times['unit_s'] / forwards:.2f} ×)")  # fmt: skip
    return {"examples": n, **times}


def main() -> None:
    """Run both measurements and print them."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--json", type=Path, help="write the figures as JSON here")
    parser.add_argument("--examples", type=int, default=20, help="examples for the per-token part (0: skip it)")
    args = parser.parse_args()
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", os.cpu_count() or 1)))
    from shiftlens.models import weight_source

    config = weight_source("smollm2").config
    with tempfile.TemporaryDirectory() as tmp:
        figures = {"weight_map": weight_map(config, Path(tmp))}
        helper = f"import json, sys; sys.path.insert(0, {str(Path(__file__).parent)!r}); import diff; from pathlib "
        helper += f"import Path; print(json.dumps(diff.in_process(Path({tmp!r}) / 'adapter', Path({tmp!r}) / 'm2')))"
        done = subprocess.run([sys.executable, "-c", helper], check=True, capture_output=True, text=True)
        own = json.loads(done.stdout.strip().splitlines()[-1])
        figures["weight_map_in_process"] = own
        print(f"in process: {own['wall_s']:.1f} s wall, {own['cpu_s']:.1f} s CPU; "
              f"RSS {own['rss_before_mib']:.0f} MiB before the map (all imported), "
              f"peak {own['peak_mib']:.0f} MiB: +{own['peak_mib'] - own['rss_before_mib']:.0f} MiB")  # fmt: skip
        if args.examples:
            figures["tokens"] = tokens(args.examples, Path(tmp))
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
