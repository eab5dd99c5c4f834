"""Arguments several subcommands share (which model, how to load it, which layers), defined once."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from shiftlens.loading import DTYPES

if TYPE_CHECKING:
    from shiftlens.loading import LoadedModel
    from shiftlens.models import ModelSpec


def add_model_arguments(parser: argparse.ArgumentParser, *, dtype: bool = True, device: str = "cpu") -> None:
    """--model, --gguf-file, --adapter, --dtype (optional), --device and --trust-remote-code."""
    parser.add_argument("--model", required=True, help="hub id, local directory, .gguf file or built-in name")
    parser.add_argument("--gguf-file", help="GGUF file name inside --model's directory")
    parser.add_argument("--adapter", help="PEFT/LoRA adapter merged into --model")
    if dtype:
        parser.add_argument("--dtype", default="float32", choices=tuple(DTYPES))
    parser.add_argument("--device", default=device, help="cpu, cuda[:N] or auto (accelerate device map)")
    parser.add_argument("--trust-remote-code", action="store_true", help="run code from the model's repository")


def add_layers_argument(parser: argparse.ArgumentParser) -> None:
    """--layers 0,3,10-12 (parsed by `shiftlens.options.parse_layers`)."""
    parser.add_argument("--layers", help="layers to explain, e.g. 0,3,10-12 (default: all)")


def model_spec_from(args: argparse.Namespace) -> ModelSpec:
    """The model the parsed `add_model_arguments` options name."""
    from shiftlens.models import ModelSpec

    return ModelSpec(
        args.model,
        gguf_file=args.gguf_file,
        adapter=args.adapter,
        dtype=getattr(args, "dtype", "float32"),
        device=args.device,
        trust_remote_code=args.trust_remote_code,
    )


def load_model_from(args: argparse.Namespace) -> LoadedModel:
    """Load the model the parsed `add_model_arguments` options name."""
    return model_spec_from(args).load()
