"""Benchmark the head explainer on SmolLM2-135M-Instruct with the paper's 26k-word ShareGPT list.

1. The vectorised `explain_layer` vs the literal per-dimension reference on a sample of heads (same
   heads, same inputs; identical output checked). 2. The whole model (30 layers × 9 heads) through
   `shiftlens heads` in a subprocess, timed, with its peak RSS. Co-occurrence backend: ``ppmi:wordnet``
   (PPMI + SVD over the WordNet glosses, built once and cached before anything is timed).

Run: ``.venv/bin/python bench/heads.py [--json PATH]``.
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

import numpy as np
import torch

from shiftlens.architecture import attention_qk, input_embeddings
from shiftlens.heads.cooccurrence import word_vectors
from shiftlens.heads.core import PairFilter, explain_layer, word_thresholds
from shiftlens.heads.reference import reference_explain_layer
from shiftlens.models import weight_source
from shiftlens.vocabulary import load_vocabulary

VOCAB = Path(__file__).resolve().parents[2] / "shared" / "paper-data" / "datasets" / "SingleShareGPT_Vocab.tsv"
SAMPLE = [(0, 0), (6, 3), (12, 6), (18, 1), (24, 4), (29, 8)]  # (layer, head) spread over the depth


def same(ours, reference) -> bool:
    """Exact equality of ranks and pairs; energies and scores to float64 rounding."""
    for name, value in ours.arrays().items():
        expected = reference.arrays()[name]
        if value.shape != expected.shape:
            return False
        if value.dtype.kind in "iu":
            if not np.array_equal(value, expected):
                return False
        elif not np.allclose(value, expected, rtol=1e-9, atol=0, equal_nan=True):
            return False
    return True


def main() -> None:
    """Run both measurements and print them side by side."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--json", type=Path, help="write the figures as JSON here")
    parser.add_argument("--vocab", type=Path, default=VOCAB)
    parser.add_argument("--top-k", type=int, default=100)
    parser.add_argument("--skip-full", action="store_true", help="only the sample-of-heads comparison")
    args = parser.parse_args()
    torch.set_num_threads(os.cpu_count() or 1)

    source, config, tokenizer, _ = weight_source("smollm2")
    vocab = load_vocabulary(args.vocab, tokenizer)
    words = vocab.vectors(input_embeddings(source, config)).double()
    start = time.perf_counter()
    vectors = word_vectors("ppmi:wordnet", vocab.words)
    print(f"co-occurrence vectors (ppmi:wordnet, cached after the first build): {time.perf_counter() - start:.1f} s")
    reference_words = list(range(min(3000, len(vocab))))
    thresholds = word_thresholds(vectors.vectors, vectors.present, torch.tensor(reference_words))
    pair_filter = PairFilter(vectors.vectors, thresholds)

    ours_s = reference_s = 0.0
    identical = True
    n_pairs = 0
    for layer, head in SAMPLE:
        wq, wk = attention_qk(source, config, layer)
        start = time.perf_counter()
        ours = explain_layer(words, wq[head : head + 1], wk[head : head + 1], args.top_k, pair_filter)
        ours_s += time.perf_counter() - start
        start = time.perf_counter()
        reference = reference_explain_layer(
            words, wq, wk, args.top_k, (vectors.vectors, vectors.present), reference_words, heads=[head]
        )
        reference_s += time.perf_counter() - start
        identical &= same(ours, reference)
        n_pairs += len(ours.pair_dim)
        print(f"layer {layer:2d} head {head}: {len(ours.pair_dim)} pairs, identical so far: {identical}")
    result = {
        "machine": "2-core CPU, 24 GiB, no GPU",
        "model": "smollm2 (SmolLM2-135M-Instruct)",
        "n_words": len(vocab),
        "n_words_with_vector": int(vectors.present.sum()),
        "top_k": args.top_k,
        "sample_heads": SAMPLE,
        "sample_pairs": n_pairs,
        "ours_s": round(ours_s, 3),
        "reference_s": round(reference_s, 3),
        "speedup": round(reference_s / ours_s, 1),
        "identical": bool(identical),
    }
    if not args.skip_full:
        with tempfile.TemporaryDirectory() as out:
            command = [sys.executable, "-m", "shiftlens.cli.main", "heads", "--model", "smollm2"]
            command += ["--vocab", str(args.vocab), "--out", out, "--candidates", str(args.top_k)]
            start = time.perf_counter()
            subprocess.run(command, check=True, env={**os.environ, "SHIFTLENS_NO_PROGRESS": "1"})
            result["full_model_s"] = round(time.perf_counter() - start, 1)
            result["full_model_pairs"] = json.loads((Path(out) / "manifest.json").read_text())["summary"]["n_pairs"]
        result["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024, 1)
    print(f"{'':24}{'ours':>10}{'reference':>12}")
    print(f"{'6 heads, seconds':24}{ours_s:10.2f}{reference_s:12.2f}   ({result['speedup']}x, identical={identical})")
    for key in ("full_model_s", "full_model_pairs", "peak_rss_mb"):
        if key in result:
            print(f"{key}: {result[key]}")
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
