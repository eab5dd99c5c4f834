"""Arguments several subcommands share (which model, how to load it, which layers), defined once."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING, Any

from shiftlens.models import DTYPES

if TYPE_CHECKING:
    from shiftlens.models import LoadedModel, ModelSpec


def add_model_arguments(parser: argparse.ArgumentParser, *, dtype: bool = True, device: str = "cpu") -> None:
    """--model, --gguf-file, --adapter, --dtype (optional), --device and --trust-remote-code."""
    parser.add_argument("--model", required=True, help="hub id, local directory, .gguf file or built-in name")
    parser.add_argument("--gguf-file", help="GGUF file name inside --model's directory")
    parser.add_argument("--adapter", help="PEFT/LoRA adapter merged into --model")
    if dtype:
        parser.add_argument("--dtype", default="float32", choices=tuple(DTYPES))
    parser.add_argument("--device", default=device, help="cpu, cuda[:N] or auto (accelerate device map)")
    parser.add_argument("--trust-remote-code", action="store_true", help="run code from the model's repository")


def add_shard_argument(parser: argparse.ArgumentParser, units: str) -> None:
    """--shard I/N: one part of a data-parallel run (torchrun / accelerate launch ranks shard by themselves)."""
    parser.add_argument(
        "--shard",
        metavar="I/N",
        help=f"compute only part I of N (0-based) of the {units}, e.g. a job array's task; rerun without --shard "
        "afterwards to merge (under torchrun / accelerate launch, ranks shard by themselves)",
    )


def run_placement(args: argparse.Namespace) -> dict[str, Any]:
    """The ``shard`` and ``launch`` keywords of a run entry point, from --shard and the launcher's environment."""
    from shiftlens.distributed import launched
    from shiftlens.storage import Shard

    return {"shard": None if args.shard is None else Shard.parse(args.shard), "launch": launched()}


def report_partial(out: Path, shard: Any, launch: Any) -> bool:
    """Print what a shard or a non-zero rank stored (its run is merged elsewhere); False for a whole run."""
    if shard is not None:
        print(
            f"shard {shard.index}/{shard.count} stored in {out}; once every shard has finished, run the same "
            "command without --shard to merge them: it computes nothing already stored and writes the tables"
        )
    elif launch is not None and launch.shard.index != 0:
        print(f"rank {launch.shard.index}/{launch.shard.count}: shard stored in {out}; rank 0 merged the run")
    else:
        return False
    return True


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
