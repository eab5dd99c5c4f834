"""The model option group every subcommand shares: ``--model`` and the loading options of `ModelSpec`."""

from __future__ import annotations

import argparse
from collections.abc import Collection

from shiftlens.cli.flags import Parser, add_settings, settings_from
from shiftlens.models import ModelSpec

MODEL_HELP = "hub id, local directory, .gguf file or built-in name"


def add_model_arguments(parser: Parser, *, exclude: Collection[str] = ()) -> None:
    """--model, then --gguf-file, --adapter, --dtype, --device, --trust-remote-code generated from `ModelSpec`."""
    group = parser.add_argument_group("model") if isinstance(parser, argparse.ArgumentParser) else parser
    group.add_argument("--model", required=True, help=MODEL_HELP)
    add_settings(group, ModelSpec, exclude=exclude)


def model_spec(args: argparse.Namespace, *, exclude: Collection[str] = ()) -> ModelSpec:
    """The `ModelSpec` the parsed `add_model_arguments` options name."""
    return settings_from(args, ModelSpec, exclude=exclude, name=args.model)
