"""What several subcommands share: the model option group (``--model`` and `ModelSpec`'s loading options), --shard."""

from __future__ import annotations

import argparse
from collections.abc import Collection
from pathlib import Path
from typing import Any

from shiftlens.cli.flags import Parser, add_settings, settings_from
from shiftlens.models.spec import ModelSpec, check_name

MODEL_HELP = "hub id, local directory, .gguf file or built-in name"


def add_model_arguments(parser: Parser, *, exclude: Collection[str] = ()) -> None:
    """--model, then --gguf-file, --adapter, --dtype, --device, --trust-remote-code generated from `ModelSpec`."""
    group = parser.add_argument_group("model") if isinstance(parser, argparse.ArgumentParser) else parser
    group.add_argument("--model", required=True, help=MODEL_HELP)
    add_settings(group, ModelSpec, exclude=exclude)


def model_spec(args: argparse.Namespace, *, exclude: Collection[str] = ()) -> ModelSpec:
    """The `ModelSpec` the parsed `add_model_arguments` options name, its name checked first (`check_name`):
    a misspelled built-in name or a missing model fails at once, before torch loads to resolve the device."""
    check_name(args.model, getattr(args, "gguf_file", None), getattr(args, "adapter", None))
    return settings_from(args, ModelSpec, exclude=exclude, name=args.model)


VOCAB_HELP = "word list: word<TAB>frequency lines or one word a line"


def add_run_command(
    subparsers: argparse._SubParsersAction,
    name: str,
    help: str,
    settings: type,
    inputs: tuple[str, str],
    units: str,
    *,
    title: str,
    exclude: Collection[str] = (),
) -> argparse.ArgumentParser:
    """A method command: the model group, its input (``inputs``: flag, help), --out, --shard, the settings' flags."""
    parser = subparsers.add_parser(name, help=help)
    add_model_arguments(parser, exclude=exclude)
    parser.add_argument(inputs[0], required=True, type=Path, help=inputs[1])
    parser.add_argument("--out", required=True, type=out_dir, help="run directory (resumed when it exists)")
    add_force_argument(parser)
    add_shard_argument(parser, units)
    add_settings(parser, settings, title=title)
    return parser


def out_dir(text: str) -> Path:
    """An --out value: a directory name, never empty (Path('') would be the current directory)."""
    if not text.strip():
        raise argparse.ArgumentTypeError("is empty: name a directory for the run")
    return Path(text)


def add_force_argument(parser: argparse.ArgumentParser) -> None:
    """--force: delete the run stored in --out (only a shiftlens run's files, listed first) and start over."""
    parser.add_argument(
        "--force",
        action="store_true",
        help="delete the run stored in --out (its files are listed first) and start over (default: resume it)",
    )


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
