"""No traceback for a user's mistake: every command, several bad arguments each, ends with exit code 2 and a
one-line error; Ctrl-C ends with exit code 130 and one line, keeps the finished units, and the rerun resumes.

`CASES` covers every command `shiftlens --help` lists (and every `analyze` subcommand): a new command without
bad-argument cases fails `test_every_command_has_bad_argument_cases`. The cases run in-process (a traceback
would escape `main`); one more runs through ``python -m shiftlens.cli.main``, and Ctrl-C is a real SIGINT
in a subprocess.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import save_tiny_model

from shiftlens.cli.main import build_parser, main

# {placeholders} name files made by `files`; "organism-base" is a built-in model (no hub call)
RUN = ["--out", "{out}"]
ORG = ["--model", "organism-base"]
CASES: dict[str, list[list[str]]] = {
    "compare": [
        ["organism-base", "organism-tuned", "--data", "{missing}", "--vocab", "{words}", *RUN],
        ["organism-base", "organism-tuned", "--data", "{data}", "--vocab", "{missing}", *RUN],
        ["organism-base", "organism-tuned", "--data", "{data}", "--vocab", "{words}", *RUN, "--null-draws", "x"],
        ["organism-base", "organism-tuned", "--data", "{data}", "--vocab", "{words}", *RUN, "--responses", "bogus"],
        ["organism-base", "organism-tuned", "--data", "{data}", "--vocab", "{words}", *RUN, "--layers", "1-x"],
        ["organism-base", "organism-tuned", "--data", "{data}", "--vocab", "{words}", *RUN, "--ratings", "{missing}"],
        ["organism-base", "organism-tuned", "--data", "{garbage}", "--vocab", "{words}", *RUN],
        ["{nowhere}", "organism-tuned", "--data", "{data}", "--vocab", "{words}", *RUN],
        [
            "organism-base",
            "organism-tuned",
            "--data",
            "{data}",
            "--vocab",
            "{words}",
            *RUN,
            "--instruction-verbs",
            "{empty_dir}",
        ],
    ],
    "diff": [
        ["organism-base", "organism-tuned", *RUN],
        ["{nowhere}", "organism-tuned", "--weights-only", *RUN],
        ["organism-base", "organism-tuned", "--data", "{missing}", *RUN],
        ["organism-base", "organism-tuned", "--data", "{garbage}", *RUN],
        ["organism-base", "organism-tuned", "--tuned-adapter", "{missing}", "--weights-only", *RUN],
        ["organism-base", "organism-base", "--tuned-adapter", "{empty_dir}", "--weights-only", *RUN],
        ["organism-base", "organism-tuned", "--weights-only", "--limit", "x", *RUN],
    ],
    "demo": [
        ["--limit", "many"],
        ["--annotator", "bogus"],
        ["--layers", "a,b"],
        ["--instruction-verbs", "{missing}"],
        ["--null-draws", "-1"],
        ["--heads-cooccurrence", "bogus:spec"],
    ],
    "attribute": [
        [*ORG, "--data", "{missing}", *RUN],
        [*ORG, "--data", "{data}", *RUN, "--max-new-tokens", "x"],
        [*ORG, "--data", "{data}", *RUN, "--objective", "bogus"],
        [*ORG, "--data", "{data}", *RUN, "--limit", "0"],
        [*ORG, "--data", "{data}", *RUN, "--chat-template", "{missing}"],
        [*ORG, "--data", "{data}", *RUN, "--responses-from", "{missing}"],
        [*ORG, "--data", "{data}", *RUN, "--shard", "3/2"],
        [*ORG, "--data", "{garbage}", *RUN],
        [*ORG, "--data", "{empty_dir}", *RUN],
        ["--model", "{nowhere}", "--data", "{data}", *RUN],
        ["--model", "{empty_dir}", "--data", "{data}", *RUN],
        ["--model", "{missing}.gguf", "--data", "{data}", *RUN],
    ],
    "heads": [
        [*ORG, "--vocab", "{missing}", *RUN],
        [*ORG, "--vocab", "{words}", *RUN, "--layers", "0-x"],
        [*ORG, "--vocab", "{words}", *RUN, "--candidates", "0"],
        [*ORG, "--vocab", "{words}", *RUN, "--cooccurrence", "glove:{missing}"],
        [*ORG, "--vocab", "{words}", *RUN, "--cooccurrence", "glove:{empty_dir}"],
        [*ORG, "--vocab", "{empty_dir}", *RUN],
        [*ORG, "--vocab", "{words}", *RUN, "--z", "high"],
        [*ORG, "--vocab", "{words}", *RUN, "--layers", "99"],
        ["--model", "{empty_dir}", "--vocab", "{words}", *RUN],
    ],
    "ffn": [
        [*ORG, "--vocab", "{missing}", *RUN],
        [*ORG, "--vocab", "{words}", *RUN, "--components", "x"],
        [*ORG, "--vocab", "{words}", *RUN, "--words-per-component", "0"],
        [*ORG, "--vocab", "{words}", *RUN, "--layers", "-"],
        [*ORG, "--vocab", "{words}", *RUN, "--dtype", "float8"],
        ["--model", "{nowhere}", "--vocab", "{words}", *RUN],
    ],
    "annotate": [
        ["{missing}", "--annotator", "lexical"],
        ["{empty_dir}", "--annotator", "lexical"],
        ["{empty_dir}", "--annotator", "bogus"],
        ["{empty_dir}", "--annotation-runs", "x"],
        ["{empty_dir}", "--annotator", "llm"],
    ],
    "analyze instructions": [
        ["{missing}", "{missing}"],
        ["{empty_dir}", "{empty_dir}"],
        ["{empty_dir}", "{empty_dir}", "--seed", "x"],
        ["{empty_dir}", "{empty_dir}", "--protocol", "bogus"],
        ["{empty_dir}", "{empty_dir}", "--ratings", "{missing}"],
    ],
    "analyze heads": [
        ["{missing}", "{missing}"],
        ["{empty_dir}", "{empty_dir}"],
        ["{empty_dir}", "{empty_dir}", "--groups", "x"],
        ["{empty_dir}", "{empty_dir}", "--instruction-verbs", "{missing}"],
        ["{empty_dir}", "{empty_dir}", "--instruction-verbs", "{empty_dir}"],
    ],
    "analyze ffn": [
        ["{missing}", "{missing}"],
        ["{empty_dir}", "{empty_dir}"],
        ["{empty_dir}", "{empty_dir}", "--null-draws", "x"],
        ["{empty_dir}", "{empty_dir}", "--protocol", "bogus"],
    ],
    "reproduce": [
        ["{missing}"],
        ["{empty_dir}"],
        ["{empty_dir}", "--protocol", "bogus"],
        ["{empty_dir}", "--min-response-tokens", "x"],
    ],
    "validate": [
        ["{missing}"],
        ["{empty_dir}"],
        ["{empty_dir}", "--draws", "x"],
        ["{empty_dir}", "--limit", "0"],
    ],
}


def command_names() -> set[str]:
    """Every command of `shiftlens --help`, an `analyze` one as "analyze NAME"."""
    commands = build_parser()._subparsers._group_actions[0].choices
    analyses = commands["analyze"]._subparsers._group_actions[0].choices
    return {name for name in commands if name != "analyze"} | {f"analyze {name}" for name in analyses}


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, str]:
    """The placeholders' paths: a missing file, an empty directory, a garbage JSONL, one prompt, a word list."""
    root = tmp_path_factory.mktemp("bad-arguments")
    (root / "empty").mkdir()
    (root / "garbage.jsonl").write_text("{not json\n")
    (root / "data.jsonl").write_text(json.dumps({"id": "a", "prompt": "Say hi.", "response": "Hi."}) + "\n")
    (root / "words.tsv").write_text("hi\t1.0\nsay\t0.5\n")
    return {
        "missing": str(root / "missing.txt"),
        "empty_dir": str(root / "empty"),
        "garbage": str(root / "garbage.jsonl"),
        "data": str(root / "data.jsonl"),
        "words": str(root / "words.tsv"),
        "nowhere": str(root / "no" / "such" / "model"),
    }


def run_cli(argv: list[str], capsys) -> tuple[int, str]:
    """Exit code and stderr of ``shiftlens ARGV`` in this process; an escaping exception fails the test."""
    try:
        code = main(argv)
    except SystemExit as exc:  # argparse's own errors (a bad number or choice)
        code = exc.code
    except BaseException as exc:  # noqa: BLE001 - what a user would see as a traceback
        pytest.fail(f"shiftlens {' '.join(argv)} raised {type(exc).__name__}: {exc}")
    return code, capsys.readouterr().err


def test_every_command_has_bad_argument_cases():
    assert set(CASES) == command_names()


@pytest.mark.parametrize("command", sorted(CASES))
def test_bad_arguments_end_with_one_line_and_exit_2(command, files, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)  # demo's default --out is relative
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    for i, case in enumerate(CASES[command]):
        argv = [*command.split(), *(part.format(**files, out=tmp_path / f"out{i}") for part in case)]
        code, err = run_cli(argv, capsys)
        assert code == 2, (argv, err)
        assert "Traceback" not in err, (argv, err)
        errors = [line for line in err.splitlines() if "error:" in line]
        assert len(errors) == 1 and errors[0] == err.splitlines()[-1], (argv, err)


def test_the_entry_point_prints_one_line_for_a_missing_file(files):
    """Through ``python -m shiftlens.cli.main``: the error's one line, no traceback."""
    argv = ["attribute", "--model", "organism-base", "--data", files["missing"], "--out", files["empty_dir"] + "/x"]
    result = subprocess.run([sys.executable, "-m", "shiftlens.cli.main", *argv], capture_output=True, text=True)
    assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr
    assert result.stderr.strip().splitlines()[-1].startswith("shiftlens: error: "), result.stderr


# ---------------------------------------------------------------- Ctrl-C

INTERRUPT_AT = 2  # the unit about to be written when SIGINT arrives
INTERRUPTING = """
import os, signal, sys
signal.signal(signal.SIGINT, signal.default_int_handler)  # as in a terminal, even when started in the background
from shiftlens import storage
from shiftlens.cli.main import main
write, count = storage.RunDirectory.write_unit, [0]
def write_unit(self, *args, **kwargs):
    count[0] += 1
    if count[0] == {at}:
        os.kill(os.getpid(), signal.SIGINT)  # a real SIGINT, as Ctrl-C sends it, delivered before this write
    return write(self, *args, **kwargs)
storage.RunDirectory.write_unit = write_unit
sys.exit(main(sys.argv[1:]))
"""


def unit_records(out: Path) -> dict[str, float]:
    """Each stored unit record's file and modification time."""
    return {p.name: p.stat().st_mtime_ns for p in (out / "units").glob("*.json")}


def test_ctrl_c_exits_130_with_one_line_keeps_the_finished_units_and_the_rerun_resumes(tmp_path):
    model = tmp_path / "model"
    save_tiny_model(model)
    rows = [{"id": f"e{i}", "prompt": f"Summarize the text {i}.", "response": "The cat sleeps."} for i in range(3)]
    data = tmp_path / "data.jsonl"
    data.write_text("".join(json.dumps(row) + "\n" for row in rows))
    out = tmp_path / "run"
    argv = ["attribute", "--model", str(model), "--data", str(data), "--out", str(out), "--device", "cpu"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    script = INTERRUPTING.format(at=INTERRUPT_AT)
    first = subprocess.run([sys.executable, "-c", script, *argv], capture_output=True, text=True, env=env)
    assert first.returncode == 128 + signal.SIGINT, first.stderr
    assert "Traceback" not in first.stderr
    assert first.stderr.strip().splitlines()[-1] == (
        f"shiftlens: interrupted; finished work is kept in {out}, rerun the same command to resume"
    )
    kept = unit_records(out)
    assert len(kept) == INTERRUPT_AT - 1, sorted(out.rglob("*"))
    assert main(argv) == 0  # the rerun, in this process (a second interpreter start costs ~10 s here)
    after = unit_records(out)
    assert len(after) == len(rows) and all(after[name] == mtime for name, mtime in kept.items())


def test_a_shiftlens_warning_is_one_line_on_stderr() -> None:
    """What a command ignored is said as `shiftlens: warning: ...`, not Python's two-line file:line form."""
    code = (
        "from shiftlens.cli.parser import warnings_to_stderr; warnings_to_stderr(); warnings_to_stderr()\n"
        "from shiftlens.errors import warn; warn('the lexical annotator ignores\\n  the endpoint')\n"
        "import warnings; warnings.warn('other', UserWarning)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    lines = done.stderr.splitlines()
    assert lines[0] == "shiftlens: warning: the lexical annotator ignores the endpoint"  # once, though installed twice
    assert "UserWarning: other" in lines[1]  # other warnings as Python shows them
