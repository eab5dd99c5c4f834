"""Precision and memory of attribution: bfloat16/float16 vs float32, and the memory formula vs measurement.

Precision: SmolLM2-135M-Instruct (the first --examples FinalDataset.tsv prompts of at most --prompt-tokens
tokens, each with a greedy response of at most --response-tokens generated once in float32) and the
organism's tuned model (its prompts.jsonl with their stored responses) are explained by `shiftlens attribute`
in float32, bfloat16 and float16 on the same text; per dtype the instruction scores, raw matrices and
thresholded levels are compared with float32's.

Memory: the formula of docs/scale.md for LLaMA-2 7B/13B/70B (configs built from their public geometry, parameter
counts from a meta-device model), checked on SmolLM2 at two sequence lengths, each in a fresh process: the bytes
autograd saves (counted exactly with saved-tensor hooks) and the RSS growth during `attribute` (sampled every 10 ms).

    .venv/bin/python bench/precision.py --json bench-precision.json [--examples 12] [--skip-memory]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from attribution import forward_activation_bytes
from measure import PeakMemory
from scipy.stats import spearmanr

from shiftlens.architecture import geometry
from shiftlens.attribution.core import DEFAULT_CHUNK, attribute
from shiftlens.attribution.pipeline import attribute as attribute_run
from shiftlens.attribution.records import read_attribution_run
from shiftlens.density import DensityParams, importance_density, instruction_score, scale_columns
from shiftlens.examples import Example, read_jsonl, read_paper_tsv
from shiftlens.models import load_model
from shiftlens.organism import prompts_path
from shiftlens.prompting import chat_format, generate

DTYPES = ("float32", "bfloat16", "float16")
BYTES = {"float32": 4, "bfloat16": 2, "float16": 2}
PAPER_DATA = Path(os.environ.get("SHIFTLENS_PAPER_DATA", Path(__file__).resolve().parents[2] / "shared/paper-data"))
LLAMA2 = {  # public configs of meta-llama/Llama-2-{7,13,70}b-hf
    "LLaMA-2-7B": dict(hidden_size=4096, num_hidden_layers=32, num_attention_heads=32, intermediate_size=11008),
    "LLaMA-2-13B": dict(hidden_size=5120, num_hidden_layers=40, num_attention_heads=40, intermediate_size=13824),
    "LLaMA-2-70B": dict(
        hidden_size=8192, num_hidden_layers=80, num_attention_heads=64, num_key_value_heads=8, intermediate_size=28672
    ),
}
GIB = 2**30


# ---------------------------------------------------------------- precision


def smollm2_examples(lm: Any, n: int, prompt_tokens: int, response_tokens: int) -> list[Example]:
    """The first ``n`` FinalDataset prompts of at most ``prompt_tokens`` tokens, with greedy float32 responses."""
    fmt = chat_format(lm.tokenizer, "auto", lm.model)
    chosen = []
    for example in read_paper_tsv(PAPER_DATA / "datasets" / "FinalDataset.tsv"):
        if len(lm.tokenizer(example.prompt)["input_ids"]) > prompt_tokens:
            continue
        response = generate(lm.model, fmt, lm.tokenizer, example.prompt, response_tokens, example.id).strip()
        if response:
            chosen.append(replace(example, response=response))
        if len(chosen) == n:
            return chosen
    raise SystemExit(f"only {len(chosen)} FinalDataset prompts have at most {prompt_tokens} tokens")


def scored_run(lm: Any, examples: list[Example], out: Path, params: DensityParams) -> dict[str, Any]:
    """Attribute ``examples`` into ``out``; wall time and, per example id, matrix, levels and score."""
    start = time.perf_counter()
    attribute_run(lm, examples, out)
    seconds = time.perf_counter() - start
    _, records = read_attribution_run(out)
    rows = {
        r.id: (
            r.attribution,
            scale_columns(r.attribution, params),
            instruction_score(importance_density(r.attribution, params), np.asarray(r.instruction_mask)),
        )
        for r in records
    }
    return {"seconds": seconds, "rows": rows}


def compare(reference: dict[str, Any], other: dict[str, Any]) -> dict[str, float]:
    """Score, matrix and level differences of one dtype's run against the float32 run on its examples."""
    ids = sorted(other["rows"])
    ref = [reference["rows"][i] for i in ids]
    got = [other["rows"][i] for i in ids]
    score_diff = np.array([abs(g[2] - r[2]) for g, r in zip(got, ref)])
    frob = np.array([np.linalg.norm(g[0] - r[0]) / np.linalg.norm(r[0]) for g, r in zip(got, ref)])
    changed = sum(int((g[1] != r[1]).sum()) for g, r in zip(got, ref))
    cells = sum(r[1].size for r in ref)
    return {
        "examples": len(ids),
        "score_diff_mean": float(score_diff.mean()),
        "score_diff_max": float(score_diff.max()),
        "spearman": float(spearmanr([r[2] for r in ref], [g[2] for g in got]).statistic) if len(ids) > 2 else None,
        "frobenius_mean": float(frob.mean()),
        "frobenius_max": float(frob.max()),
        "levels_changed": changed / cells,
        "seconds": other["seconds"],
        "all_finite": bool(all(np.isfinite(g[0]).all() for g in got)),
    }


def precision(args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    """Per model and dtype, the comparison with float32 (float32 itself: its wall time and mean score)."""
    params = DensityParams()
    results: dict[str, Any] = {}
    for name in ("smollm2", "organism-tuned"):
        runs = {}
        for dtype in DTYPES:
            lm = load_model(name, dtype=dtype)
            if dtype == "float32":
                examples = (
                    smollm2_examples(lm, args.examples, args.prompt_tokens, args.response_tokens)
                    if name == "smollm2"
                    else read_jsonl(prompts_path())[: args.examples]
                )
            subset = examples[: args.float16_examples] if (name, dtype) == ("smollm2", "float16") else examples
            runs[dtype] = scored_run(lm, subset, workdir / f"{name}-{dtype}", params)
            print(f"{name} {dtype}: {runs[dtype]['seconds']:.1f} s", file=sys.stderr)
        reference = runs["float32"]
        scores = [row[2] for row in reference["rows"].values()]
        tokens = [row[0].shape for row in reference["rows"].values()]
        results[name] = {
            "float32": {
                "seconds": reference["seconds"],
                "examples": len(scores),
                "score_mean": float(np.mean(scores)),
                "prompt_tokens_mean": float(np.mean([t[0] for t in tokens])),
                "response_tokens_mean": float(np.mean([t[1] for t in tokens])),
            },
            **{dtype: compare(reference, runs[dtype]) for dtype in DTYPES[1:]},
        }
    return results


def precision_table(results: dict[str, Any]) -> str:
    """The precision results as a Markdown table."""
    lines = [
        "| model | dtype | examples | mean \\|Δscore\\| | max \\|Δscore\\| | Spearman | rel. Frobenius (mean / max) "
        "| levels changed | wall time |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for name, per_dtype in results.items():
        ref = per_dtype["float32"]
        lines.append(f"| {name} | float32 | {ref['examples']} | — | — | — | — | — | {ref['seconds']:.1f} s |")
        for dtype in DTYPES[1:]:
            r = per_dtype[dtype]
            rho = "—" if r["spearman"] is None else f"{r['spearman']:.3f}"
            lines.append(
                f"| {name} | {dtype} | {r['examples']} | {r['score_diff_mean']:.4f} | {r['score_diff_max']:.4f} "
                f"| {rho} "
                f"| {r['frobenius_mean']:.4f} / {r['frobenius_max']:.4f} | {100 * r['levels_changed']:.2f} % "
                f"| {r['seconds']:.1f} s |"
            )
    return "\n".join(lines)


# ---------------------------------------------------------------- memory formula


@dataclass(frozen=True)
class Shape:
    """What the memory formula needs of a Llama-type model: geometry, vocabulary and parameter count."""

    name: str
    hidden: int
    layers: int
    heads: int
    kv_heads: int
    head_dim: int
    intermediate: int
    vocab: int
    params: int

    @classmethod
    def of(cls, name: str, config: Any) -> Shape:
        """The shape of a config; parameters counted on a meta-device model (no memory used)."""
        from transformers import AutoModelForCausalLM

        with torch.device("meta"):
            params = sum(p.numel() for p in AutoModelForCausalLM.from_config(config).parameters())
        g = geometry(config)
        return cls(
            name, g.hidden, g.n_layers, g.n_heads, g.n_kv_heads, g.head_dim, config.intermediate_size,
            config.vocab_size, params,
        )  # fmt: skip


def activation_bytes(s: Shape, tokens: int, width: int, parameter_grads: bool = False) -> int:
    """Bytes autograd keeps for backward from one forward of ``tokens`` tokens (Llama layer, SDPA attention).

    Per layer and token: both RMSNorm inputs and their rstd in float32 (2·(4H + 4)); q, k, v and the attention
    output (2H + 2H_kv) and the SwiGLU gate, silu(gate) and up (3I) at ``width`` bytes; the attention
    log-sum-exp (4 bytes per head). Once per token: the final norm's input (4H + 4) and RoPE cos/sin (2·d).
    With ``parameter_grads`` (and float32) the inputs of the projections are kept too: +2H + I per layer.
    """
    per_layer = 2 * (4 * s.hidden + 4) + width * (2 * s.hidden + 2 * s.kv_heads * s.head_dim + 3 * s.intermediate)
    per_layer += 4 * s.heads + (width * (2 * s.hidden + s.intermediate) if parameter_grads else 0)
    return tokens * (s.layers * per_layer + 4 * s.hidden + 4 + 2 * s.head_dim * width)


def memory_ours(s: Shape, tokens: int, width: int, chunk: int = DEFAULT_CHUNK) -> dict[str, int]:
    """Our peak: weights, one forward's saved activations (no parameter gradients) and the per-chunk extras.

    Extras: the chunk's k target rows of float32 logits, softmax and head gradient (3·4·k·V), and the k
    input-embedding gradients of the prefix, listed and then stacked (2·k·T·H at ``width``).
    """
    parts = {
        "weights": s.params * width,
        "activations": activation_bytes(s, tokens, width),
        "extra": 12 * chunk * s.vocab + 2 * chunk * tokens * s.hidden * width,
    }
    return {**parts, "total": sum(parts.values())}


def memory_paper(s: Shape, tokens: int) -> dict[str, int]:
    """The paper-style peak: float32 weights and their gradients, activations incl. the projections' inputs,
    and the full-sequence float32 logits with their log-softmax and its gradient (3·4·T·V)."""
    parts = {
        "weights": 4 * s.params,
        "parameter_grads": 4 * s.params,
        "activations": activation_bytes(s, tokens, 4, parameter_grads=True),
        "logits": 12 * tokens * s.vocab,
    }
    return {**parts, "total": sum(parts.values())}


def llama2_shapes() -> list[Shape]:
    """LLaMA-2 7B, 13B and 70B as `Shape`s, from their public geometry (vocabulary 32,000, untied)."""
    from transformers import LlamaConfig

    return [Shape.of(name, LlamaConfig(vocab_size=32000, **kw)) for name, kw in LLAMA2.items()]


def memory_table(shapes: list[Shape], lengths: tuple[int, ...]) -> str:
    """The formula's figures (GiB) as a Markdown table."""
    lines = [
        "| model | T | ours bf16: weights + activations + extra = total | ours fp32 total "
        "| paper-style fp32: weights + grads + activations + logits = total |",
        "| --- | --- | --- | --- | --- |",
    ]
    for s in shapes:
        for t in lengths:
            bf16, fp32, paper = memory_ours(s, t, 2), memory_ours(s, t, 4), memory_paper(s, t)
            ours = " + ".join(f"{bf16[k] / GIB:.1f}" for k in ("weights", "activations", "extra"))
            theirs = " + ".join(
                f"{paper[k] / GIB:.1f}" for k in ("weights", "parameter_grads", "activations", "logits")
            )
            lines.append(
                f"| {s.name} | {t} | {ours} = **{bf16['total'] / GIB:.1f}** | {fp32['total'] / GIB:.1f} "
                f"| {theirs} = **{paper['total'] / GIB:.1f}** |"
            )
    return "\n".join(lines)


# ---------------------------------------------------------------- memory measurement


def memory_worker(tokens: int, dtype: str, targets: int) -> None:
    """In this fresh process: exact saved-activation bytes and RSS growth of one SmolLM2 attribution."""
    lm = load_model("smollm2", dtype=dtype)
    with torch.no_grad():  # page the memory-mapped weights in, so RSS growth measures attribution only
        sum(float(p.float().sum()) for p in lm.model.parameters())
    ids = torch.randint(0, lm.model.config.vocab_size, (tokens,), generator=torch.Generator().manual_seed(0))
    saved = forward_activation_bytes(lm.model, ids[: tokens - 1])
    sources, target_positions = torch.arange(tokens - targets), torch.arange(tokens - targets, tokens)
    with PeakMemory(torch.device("cpu")) as peak:
        attribute(lm.model, ids, sources, target_positions, mode="loop", chunk_size=targets)
    print(json.dumps({"saved_bytes": saved, "rss_growth": peak.peak}))


def measure_memory(lengths: tuple[int, ...], dtypes: tuple[str, ...], args: argparse.Namespace) -> list[dict[str, Any]]:
    """Measured vs formula on SmolLM2, one fresh process per (length, dtype)."""
    shape = Shape.of("SmolLM2-135M", load_model("smollm2").model.config)
    rows = []
    for dtype in dtypes:
        for tokens in lengths:
            command = [sys.executable, __file__, "--memory-worker", str(tokens), dtype]
            command += ["--targets", str(args.targets), "--threads", str(args.threads)]
            done = subprocess.run(command, capture_output=True, text=True, check=True)
            measured = json.loads(done.stdout.strip().splitlines()[-1])
            formula = memory_ours(shape, tokens - 1, BYTES[dtype], chunk=args.targets)
            rows.append(
                {
                    "dtype": dtype,
                    "tokens": tokens,
                    **measured,
                    "formula_activations": formula["activations"],
                    "formula_growth": formula["activations"] + formula["extra"],
                }
            )
            print(rows[-1], file=sys.stderr)
    return rows


def measured_table(rows: list[dict[str, Any]]) -> str:
    """The SmolLM2 check as a Markdown table (MiB)."""
    lines = [
        "| dtype | T | saved activations: counted / formula | RSS growth during attribute / formula (activations "
        "+ extra) |",
        "| --- | --- | --- | --- |",
    ]
    mib = 2**20
    for r in rows:
        lines.append(
            f"| {r['dtype']} | {r['tokens']} | {r['saved_bytes'] / mib:.1f} / {r['formula_activations'] / mib:.1f} "
            f"| {r['rss_growth'] / mib:.0f} / {r['formula_growth'] / mib:.0f} "
            f"({r['rss_growth'] / r['formula_growth']:.2f}×) |"
        )
    return "\n".join(lines)


def main() -> None:
    """Run the precision comparison and the memory check; print Markdown tables, write JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", type=Path, help="write the results here")
    parser.add_argument("--examples", type=int, default=12)
    parser.add_argument(
        "--float16-examples", type=int, default=2, help="SmolLM2 in float16: CPU float16 matmuls are ~14× slower"
    )
    parser.add_argument("--prompt-tokens", type=int, default=96)
    parser.add_argument("--response-tokens", type=int, default=16)
    parser.add_argument("--lengths", type=int, nargs="+", default=[256, 1024], help="SmolLM2 memory check")
    parser.add_argument("--targets", type=int, default=8, help="response tokens in the memory check")
    parser.add_argument(
        "--threads", type=int, default=1, help="torch threads (1: on a contended 2-core machine 2 are 5× slower)"
    )
    parser.add_argument("--skip-precision", action="store_true")
    parser.add_argument("--skip-memory", action="store_true")
    parser.add_argument("--memory-worker", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args.memory_worker:
        memory_worker(int(args.memory_worker[0]), args.memory_worker[1], args.targets)
        return
    os.environ.setdefault("SHIFTLENS_NO_PROGRESS", "1")
    out: dict[str, Any] = {
        "machine": {
            "platform": platform.platform(),
            "cpus": os.cpu_count(),
            "threads": args.threads,
            "torch": torch.__version__,
            "load_average": os.getloadavg(),
        },
        "args": {k: v for k, v in vars(args).items() if k not in ("json", "memory_worker")},
    }
    if not args.skip_precision:
        with tempfile.TemporaryDirectory() as tmp:
            out["precision"] = precision(args, Path(tmp))
        print(precision_table(out["precision"]))
    out["memory_formula"] = memory_table(llama2_shapes(), (512, 1024))
    print(out["memory_formula"])
    if not args.skip_memory:
        out["memory_measured"] = measure_memory(tuple(args.lengths), ("float32", "bfloat16"), args)
        print(measured_table(out["memory_measured"]))
    out["machine"]["load_average_end"] = os.getloadavg()
    if args.json:
        args.json.write_text(json.dumps(out, indent=1, default=str))


if __name__ == "__main__":
    main()
