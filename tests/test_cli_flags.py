"""Flags generated from settings dataclasses (`shiftlens.cli.flags`): every field type, prefix, help, round trip."""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path

import pytest

from shiftlens.cli.flags import add_settings, options, settings_from
from shiftlens.config import check_choices, setting
from shiftlens.errors import ShiftlensError

KINDS = ("alpha", "beta")


@dataclass(frozen=True)
class Inner:
    """A nested settings object (flattened after its prefix)."""

    rate: float = setting(0.5, "a rate")
    label: str | None = setting(None, "a label")


@dataclass(frozen=True)
class Toy:
    """One field of every kind the generator knows."""

    count: int = setting(300, "how many")
    ratio: float = setting(1.5, "a ratio, in % of nothing")
    name: str = setting("alpha", "which kind", choices=KINDS)
    kind: str | None = setting("beta", "which kind or none", choices=KINDS)
    limit: int | None = setting(None, "only the first N")
    path: Path | None = setting(None, "a file")
    fast: bool = setting(False, "go fast")
    check: bool = setting(True, "check things")
    layers: tuple[int, ...] | None = setting(None, "layers, e.g. 0,3,10-12")
    words: tuple[str, ...] = setting(KINDS, "kinds to run", choices=KINDS)
    renamed: int = setting(7, "a field with its own flag", flag="--other-name", metavar="N")
    inner: Inner = setting(Inner(), "nested", prefix="inner")
    flat: Inner = setting(Inner(rate=2.0), "nested, flattened")
    plain: int = 3  # not declared with `setting`: no flag


def parser_of(prefix: str = "", **kwargs) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="toy", exit_on_error=False)
    add_settings(parser, Toy, prefix, **kwargs)
    return parser


def parse(argv: list[str], prefix: str = "", **kwargs) -> Toy:
    return settings_from(parser_of(prefix, **kwargs).parse_args(argv), Toy, prefix, **kwargs)


def test_flags_are_named_after_fields_with_prefix_and_nested_prefix():
    flags = [o.flag for o in options(Toy, "heads")]
    assert flags == [
        "--heads-count", "--heads-ratio", "--heads-name", "--heads-kind", "--heads-limit", "--heads-path",
        "--heads-fast", "--heads-check", "--heads-layers", "--heads-words", "--heads-other-name",
        "--heads-inner-rate", "--heads-inner-label", "--heads-rate", "--heads-label",
    ]  # fmt: skip
    assert "--heads-plain" not in flags and "--no-heads-check" in parser_of("heads").format_help()


def test_help_shows_every_default_and_the_choices():
    text = " ".join(parser_of().format_help().split())
    for shown in ("how many (default: 300)", "a ratio, in % of nothing (default: 1.5)", "go fast (default: off)",
                  "check things (default: on)", "only the first N (default: none)", "(default: alpha,beta)",
                  "--other-name N", "{alpha,beta}", "{alpha,beta,none}", "a rate (default: 0.5)",
                  "a rate (default: 2.0)", "--layers 0,3,10-12"):  # fmt: skip
        assert shown in text, shown


def test_defaults_round_trip_and_every_type_parses():
    assert parse([]) == Toy()
    got = parse(["--count", "4", "--ratio", "0.25", "--name", "beta", "--kind", "none", "--limit", "9",
                 "--path", "x.txt", "--fast", "--no-check", "--layers", "0,3-4", "--words", "beta",
                 "--other-name", "8", "--inner-rate", "0.1", "--inner-label", "a",
                 "--rate", "3", "--label", "b"])  # fmt: skip
    assert got == Toy(4, 0.25, "beta", None, 9, Path("x.txt"), True, False, (0, 3, 4), ("beta",), 8,
                      Inner(0.1, "a"), Inner(3.0, "b"))  # fmt: skip


def test_namespace_to_settings_round_trips_any_settings():
    settings = Toy(count=5, kind=None, fast=True, check=False, layers=(1, 2), words=("beta",), inner=Inner(label="z"))
    argv = ["--count", "5", "--kind", "none", "--fast", "--no-check", "--layers", "1,2", "--words", "beta"]
    assert parse([*argv, "--inner-label", "z"]) == settings
    prefixed = ["--x-count", "5", "--x-kind", "none", "--x-fast", "--no-x-check", "--x-layers", "1,2"]
    prefixed += ["--x-words", "beta"]
    assert parse([*prefixed, "--x-inner-label", "z"], "x") == settings


def test_choices_and_bad_values_are_refused():
    parser = parser_of()
    with pytest.raises(argparse.ArgumentError, match="invalid choice: 'gamma'"):
        parser.parse_args(["--name", "gamma"])
    with pytest.raises(argparse.ArgumentError, match="invalid int value: 'x'"):
        parser.parse_args(["--limit", "x"])
    with pytest.raises(ShiftlensError, match="--words must be among alpha, beta, got 'alpha,gamma'"):
        parse(["--words", "alpha,gamma"])
    with pytest.raises(ShiftlensError, match="--heads-layers takes indices and ranges"):
        parse(["--heads-layers", "1-a"], "heads")


def test_only_exclude_defaults_overrides_and_aliases():
    kwargs = {"only": ("count", "inner.rate"), "defaults": Toy(count=60, inner=Inner(rate=9.0), fast=True)}
    assert [o.flag for o in options(Toy, **kwargs)] == ["--count", "--inner-rate"]
    assert parse([], **kwargs) == Toy(count=60, inner=Inner(rate=9.0), fast=True)
    assert "(default: 60)" in parser_of(**kwargs).format_help()
    assert [o.flag for o in options(Toy, exclude=("inner", "flat", "words"))][-1] == "--other-name"
    parser = parser_of(aliases={"count": ["--n"]})
    assert settings_from(parser.parse_args(["--n", "2"]), Toy) == Toy(count=2)
    assert settings_from(parser.parse_args([]), Toy, count=11, fast=True) == Toy(count=11, fast=True)


def test_check_choices_checks_each_item_of_a_tuple_field():
    check_choices(Toy(words=("beta", "alpha")))
    with pytest.raises(ShiftlensError, match="--words must be one of alpha, beta, got 'gamma'"):
        check_choices(Toy(words=("alpha", "gamma")))
