"""`shiftlens ffn`: PCA of each layer's FFN down-projection, read through the vocabulary."""

from __future__ import annotations

import argparse

from shiftlens.options import compute_device, parse_layers


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the `ffn` subcommand."""
    parser = subparsers.add_parser("ffn", help="principal components of FFN down-projections as word lists")
    parser.add_argument("--model", required=True, help="hub id, local directory, .gguf file or built-in name")
    parser.add_argument("--gguf-file", help="GGUF file name inside --model's directory")
    parser.add_argument("--adapter", help="PEFT/LoRA adapter merged into --model")
    parser.add_argument("--vocab", required=True, help="word list: word<TAB>frequency lines or one word a line")
    parser.add_argument("--vocab-top", type=int, help="keep only the N most frequent words")
    parser.add_argument("--out", required=True, help="run directory (resumed when it exists)")
    parser.add_argument("--components", type=int, default=300, help="principal components kept per layer")
    parser.add_argument("--top-k", type=int, default=50, help="words stored per component")
    parser.add_argument("--layers", help="layers to explain, e.g. 0,3,10-12 (default: all)")
    parser.add_argument("--device", default="cpu", help="cpu, cuda[:N] or auto")
    parser.add_argument("--dtype", default="float32", help="float32, bfloat16 or float16")
    parser.add_argument("--trust-remote-code", action="store_true")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Load the model and run `explain_ffn`."""
    from shiftlens.ffn.pipeline import explain_ffn
    from shiftlens.loading import load_model

    layers = parse_layers(args.layers)
    loaded = load_model(
        args.model,
        gguf_file=args.gguf_file,
        adapter=args.adapter,
        dtype=args.dtype,
        device=args.device,
        trust_remote_code=args.trust_remote_code,
    )
    out = explain_ffn(
        loaded,
        args.vocab,
        args.out,
        components=args.components,
        top_k=args.top_k,
        layers=layers,
        vocab_top=args.vocab_top,
        device=compute_device(args.device),
    )
    print(f"wrote {out / 'concepts.parquet'} and {out / 'concepts.tsv'}")
    return 0
