"""The command line fails fast: its parser and the checks of a model's name and of an endpoint import none of
torch, transformers, scipy, pyarrow or matplotlib, so a misspelled built-in name or a dead endpoint is told
in about the time Python takes to start (docs/robustness.md, issue 16b). Each command runs in a fresh
interpreter, whose ``sys.modules`` is read when ``main`` returns."""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

import pytest

from shiftlens import organism

HEAVY = ("torch", "transformers", "scipy", "pyarrow", "matplotlib")
# main(argv) in a fresh interpreter; then the heavy packages it imported, as the last line of stderr
RUN_MAIN = f"""
import sys
from shiftlens.cli.main import main
code = main(sys.argv[1:])
print("imported:", ",".join(m for m in {HEAVY!r} if m in sys.modules), file=sys.stderr)
sys.exit(code)
"""


def run_cli(*argv: str | Path) -> tuple[int, str, str]:
    """(exit code, the error line, the heavy packages imported) of ``shiftlens ARGV`` in a fresh interpreter."""
    done = subprocess.run([sys.executable, "-c", RUN_MAIN, *map(str, argv)], capture_output=True, text=True)
    lines = done.stderr.strip().splitlines()
    assert lines and lines[-1].startswith("imported:"), done.stderr
    assert "Traceback" not in done.stderr, done.stderr
    return done.returncode, lines[-2] if len(lines) > 1 else "", lines[-1].removeprefix("imported:").strip()


def closed_port() -> int:
    """A local port nothing listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_building_the_parser_imports_no_heavy_package() -> None:
    code = "import sys, shiftlens.cli.main as m; m.build_parser(); print(','.join(sorted(sys.modules)))"
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    modules = set(loaded.strip().split(","))
    assert "shiftlens.cli.compare" in modules and "shiftlens.cli.analyze_heads" in modules  # every command built
    assert [m for m in HEAVY if m in modules] == []


@pytest.mark.parametrize(
    "command",
    [
        ["attribute", "--model", "organism-tund", "--data", "DATA", "--out", "OUT"],
        ["heads", "--model", "organism-tund", "--vocab", "VOCAB", "--out", "OUT"],
        ["ffn", "--model", "organism-tund", "--vocab", "VOCAB", "--out", "OUT"],
        ["compare", "organism-base", "organism-tund", "--data", "DATA", "--vocab", "VOCAB", "--out", "OUT"],
    ],
    ids=lambda command: command[0],
)
def test_a_misspelled_builtin_name_fails_before_torch_loads(command: list[str], tmp_path: Path) -> None:
    out = tmp_path / "out"
    paths = {"DATA": str(organism.prompts_path()), "VOCAB": str(organism.vocab_path()), "OUT": str(out)}
    code, error, imported = run_cli(*(paths.get(word, word) for word in command))
    assert code == 2
    assert error.startswith("shiftlens: error: unknown model 'organism-tund'; did you mean organism-tuned?")
    assert imported == ""  # before: torch, scipy and pyarrow, then the same error
    assert not out.exists()


def test_a_dead_endpoint_fails_before_torch_loads(organism_ffn_run: Path, tmp_path: Path) -> None:
    dead = ["--annotator", "llm", "--annotator-endpoint", f"http://127.0.0.1:{closed_port()}/v1"]
    dead += ["--annotator-model", "m"]
    out = tmp_path / "cmp"
    data = ["--data", organism.prompts_path(), "--vocab", organism.vocab_path(), "--out", out]
    compare = ["compare", "organism-base", "organism-tuned", *data, *dead]
    for command in (["annotate", organism_ffn_run, *dead], compare):
        code, error, imported = run_cli(*command)
        assert code == 2, command[0]
        assert error.startswith("shiftlens: error: cannot reach the endpoint http://127.0.0.1:"), error
        assert "Connection refused" in error
        assert imported == "", command[0]
    assert not (organism_ffn_run / "annotations").exists() and not out.exists()
