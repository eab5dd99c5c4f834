"""The command line's words: one meaning per flag name, old spellings that warn, every option's help and
default, ``--version``, the ``auto`` device said in the log, and `demo` saying its choices before it runs."""

from __future__ import annotations

import argparse
import logging
import re
from dataclasses import dataclass
from types import SimpleNamespace

import pytest
import torch

from shiftlens import __version__
from shiftlens.cli.common import MODEL_HELP
from shiftlens.cli.compare import compare_settings
from shiftlens.cli.flags import Deprecated, add_settings, settings_from, show
from shiftlens.cli.main import build_parser, main
from shiftlens.config import setting
from shiftlens.models import ModelSpec, device

METHOD = {"attribute": ["--data", "d"], "heads": ["--vocab", "v"], "ffn": ["--vocab", "v"]}
COMPARE = ["compare", "B", "T", "--data", "d", "--vocab", "v", "--out", "o"]


def parsers(parser: argparse.ArgumentParser, name: tuple[str, ...] = ()):
    """(command, parser) for every command and subcommand."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub, child in action.choices.items():
                yield from parsers(child, (*name, sub))
    if name:
        yield " ".join(name), parser


def visible(parser: argparse.ArgumentParser, flag: str) -> argparse.Action | None:
    """The action ``flag`` names in the help (None: absent or a hidden old spelling)."""
    for action in parser._actions:
        if flag in action.option_strings and not isinstance(action, Deprecated):
            return action
    return None


def command(name: str) -> argparse.ArgumentParser:
    return dict(parsers(build_parser()))[name]


def without_default(text: str) -> str:
    return re.sub(r"\s*\(default[^)]*\)", "", text)


# ---------------------------------------------------------------- one meaning per flag name

MEANINGS = {  # flag: the commands showing it; each shows it with one help text
    "--model": {"attribute", "heads", "ffn"},  # the analysed model, never the annotator's
    "--annotator-model": {"compare", "demo", "annotate"},
    "--annotator-endpoint": {"compare", "demo", "annotate"},
    "--annotation-runs": {"compare", "demo", "annotate"},
    "--annotation-components": {"compare", "demo", "annotate"},
    "--components": {"compare", "demo", "ffn"},  # the FFN's R
    "--vocab-top": {"heads", "ffn"},  # the N most frequent words, in both methods
    "--candidates": {"heads"},
    "--words-per-component": {"ffn"},
    "--top-k": set(),
    "--top-n": set(),
    "--runs": set(),
    "--endpoint": set(),
}


@pytest.mark.parametrize("flag", sorted(MEANINGS))
def test_a_flag_name_has_one_meaning_across_commands(flag):
    shown = {name: visible(parser, flag) for name, parser in parsers(build_parser())}
    shown = {name: action for name, action in shown.items() if action is not None}
    assert set(shown) == MEANINGS[flag]
    assert len({without_default(a.help) for a in shown.values()}) <= 1, {n: a.help for n, a in shown.items()}
    if flag == "--model":
        assert {a.help for a in shown.values()} == {MODEL_HELP}


OLD = [  # command, old spelling, new spelling, value
    ("heads", "--top-k", "--candidates", "7"),
    ("heads", "--top-n", "--vocab-top", "9"),
    ("ffn", "--top-k", "--words-per-component", "7"),
    ("annotate", "--runs", "--annotation-runs", "2"),
    ("annotate", "--words", "--annotation-words", "4"),
    ("annotate", "--components", "--annotation-components", "3"),
    ("annotate", "--concurrency", "--annotation-concurrency", "2"),
    ("annotate", "--model", "--annotator-model", "m"),
    ("annotate", "--endpoint", "--annotator-endpoint", "http://x/v1"),
    ("annotate", "--temperature", "--annotator-temperature", "0.2"),
    ("annotate", "--max-tokens", "--annotator-max-tokens", "9"),
    ("compare", "--top-k", "--heads-candidates", "7"),
    ("compare", "--heads-top-k", "--heads-candidates", "7"),
    ("compare", "--heads-top-n", "--heads-vocab-top", "9"),
    ("compare", "--ffn-top-k", "--ffn-words-per-component", "7"),
    ("compare", "--vocab-top", "--ffn-vocab-top", "9"),
    ("compare", "--model", "--annotator-model", "m"),
    ("compare", "--endpoint", "--annotator-endpoint", "http://x/v1"),
    ("compare", "--annotation-model", "--annotator-model", "m"),
    ("compare", "--annotation-endpoint", "--annotator-endpoint", "http://x/v1"),
    ("compare", "--annotation-retries", "--annotator-retries", "2"),
    ("demo", "--top-k", "--heads-candidates", "7"),
]


def argv_of(name: str, *options: str) -> list[str]:
    if name in METHOD:
        return [name, "--model", "m", *METHOD[name], "--out", "o", *options]
    return {"annotate": ["annotate", "run"], "compare": COMPARE, "demo": ["demo"]}[name] + list(options)


@pytest.mark.parametrize(("name", "old", "new", "value"), OLD)
def test_an_old_spelling_still_works_hidden_with_one_warning_naming_the_new_flag(name, old, new, value, capsys):
    assert visible(command(name), new) is not None
    assert old not in command(name).format_help()
    given = build_parser().parse_args(argv_of(name, new, value))
    assert capsys.readouterr().err == ""
    assert build_parser().parse_args(argv_of(name, old, value)) == given
    assert capsys.readouterr().err == f"shiftlens: warning: {old} is deprecated; use {new}\n"


def test_old_spellings_build_the_same_settings():
    old = build_parser().parse_args([*COMPARE, "--top-k", "5", "--model", "m", "--endpoint", "http://x/v1"])
    settings = compare_settings(old)
    assert (settings.heads.top_k, settings.endpoint.model, settings.endpoint.endpoint) == (5, "m", "http://x/v1")


@dataclass(frozen=True)
class Renamed:
    """Fields whose flags were renamed: a number and switches off and on by default."""

    count: int = setting(3, "how many", flag="--how-many", old_flags=("--count",))
    fast: bool = setting(False, "go fast", flag="--quick", old_flags=("--fast",))
    check: bool = setting(True, "check things", flag="--verify", old_flags=("--check",))


def test_old_flags_of_numbers_and_switches_under_a_prefix(capsys):
    parser = argparse.ArgumentParser(prog="toy")
    add_settings(parser, Renamed, "toy")
    old = settings_from(parser.parse_args(["--toy-count", "5", "--toy-fast", "--no-toy-check"]), Renamed, "toy")
    assert (
        old
        == Renamed(count=5, fast=True, check=False)
        == settings_from(parser.parse_args(["--toy-how-many", "5", "--toy-quick", "--no-toy-verify"]), Renamed, "toy")
    )
    assert capsys.readouterr().err.splitlines() == [
        "shiftlens: warning: --toy-count is deprecated; use --toy-how-many",
        "shiftlens: warning: --toy-fast is deprecated; use --toy-quick",
        "shiftlens: warning: --no-toy-check is deprecated; use --no-toy-verify",
    ]
    assert settings_from(parser.parse_args([]), Renamed, "toy") == Renamed()  # hidden ones set no default


# ---------------------------------------------------------------- help, defaults, --version


def test_every_option_has_help_and_shows_its_default():
    for name, parser in parsers(build_parser()):
        formatter = parser._get_formatter()
        for action in parser._actions:
            if isinstance(action, (Deprecated, argparse._HelpAction, argparse._SubParsersAction)):
                continue
            assert action.help and action.help != argparse.SUPPRESS, (name, action.dest)
            if action.option_strings and action.default is not None and action.default is not False:
                text = formatter._expand_help(action)
                assert f"default: {show(action.default)}" in text or "(default" in text, (name, action.dest, text)
        " ".join(parser.format_help().split())  # every help renders


@pytest.mark.parametrize("flag", ["--objective", "--mode", "--dtype", "--device"])
def test_the_attribution_and_model_options_say_what_they_do(flag):
    action = visible(command("attribute"), flag)
    assert action is not None and len(action.help) > 20 and "(default: " in action.help


def test_version(capsys):
    with pytest.raises(SystemExit) as exit:
        main(["--version"])
    assert exit.value.code == 0 and capsys.readouterr().out == f"shiftlens {__version__}\n"


# ---------------------------------------------------------------- device auto


@pytest.fixture
def fresh_auto(monkeypatch, caplog):
    """`device.auto_device` decided anew (it is cached per process), its log captured."""
    device.auto_device.cache_clear()
    caplog.set_level(logging.INFO, logger="shiftlens")
    yield monkeypatch
    device.auto_device.cache_clear()


def test_device_auto_is_the_cpu_without_cuda_and_says_so_once(fresh_auto, caplog):
    fresh_auto.setattr(torch.cuda, "is_available", lambda: False)
    assert build_parser().parse_args([*argv_of("attribute")]).device == "auto"
    specs = [ModelSpec("m"), ModelSpec("n")]
    assert [s.device for s in specs] == ["cpu", "cpu"] and specs[0].record()["device"] == "cpu"
    assert [r.getMessage() for r in caplog.records] == ["device: cpu (no CUDA)"]
    assert ModelSpec("m", device="cpu") == specs[0]  # on a machine without CUDA nothing changes


def test_device_auto_is_cuda_when_present(fresh_auto, caplog):
    fresh_auto.setattr(torch.cuda, "is_available", lambda: True)
    fresh_auto.setattr(torch.cuda, "device_count", lambda: 1)
    fresh_auto.setattr(torch.cuda, "get_device_name", lambda index=0: "NVIDIA H200")
    spec = ModelSpec("m")
    assert spec.device == "cuda" and spec.record()["device"] == "cuda"
    assert [r.getMessage() for r in caplog.records] == ["device: cuda (NVIDIA H200)"]


def test_the_cli_shows_the_device_line(fresh_auto, capsys, tmp_path):
    fresh_auto.setattr(torch.cuda, "is_available", lambda: False)
    argv = ["attribute", "--model", "organism-base", "--data", str(tmp_path / "missing"), "--out", str(tmp_path / "o")]
    assert main(argv) == 2  # a name that passes its check: the device is resolved (and said) after it
    assert "device: cpu (no CUDA)\n" in capsys.readouterr().err


# ---------------------------------------------------------------- demo


def test_demo_says_its_choices_before_it_runs(monkeypatch, capsys, tmp_path):
    import shiftlens.compare

    def stub(base, tuned, data, vocab, out, settings, log, force=False):
        print("compare started")
        return SimpleNamespace(report=out / "report.html", results=out / "results.json", path=out)

    monkeypatch.setattr(shiftlens.compare, "compare", stub)
    assert main(["demo", "--limit", "3", "--out", str(tmp_path / "d")]) == 0
    first, started = capsys.readouterr().out.splitlines()[:2]
    assert started == "compare started"
    assert first.startswith("demo: organism-base vs organism-tuned; data ")
    for said in ("(the first 3 of ", "max new tokens 60", "methods attribution,heads,ffn", f"out {tmp_path / 'd'}"):
        assert said in first, said
