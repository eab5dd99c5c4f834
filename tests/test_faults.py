"""Faults, black-box: kill -9 anywhere then rerun, unwritable and full output directories, corrupted
unit files, two runs into one directory. Each command runs through the CLI on a tiny model saved to disk.

The kill tests run the command in a subprocess with ``tests/killpoint`` on PYTHONPATH; its
``sitecustomize`` makes the process SIGKILL itself at the N-th unit write (production code has no hook).
"""

from __future__ import annotations

import errno
import json
import os
import re
import shutil
import signal
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
import torch
from conftest import TOKENIZER_TEXT, tiny_model, tiny_tokenizer

from shiftlens import atomic, storage
from shiftlens.cli.main import main
from shiftlens.storage import RunDirectory, read_units

KILLPOINT = Path(__file__).parent / "killpoint"
WORDS = sorted({w for line in TOKENIZER_TEXT for w in re.findall(r"[A-Za-z]+", line)})
EXAMPLES = [
    {"id": "a", "prompt": "Summarize the following text in one sentence.", "response": "The cat sleeps."},
    {"id": "b", "prompt": "Write a short poem about the sea.", "instruction": ["Write"]},  # generated
    {"id": "c", "prompt": "Give a synonym of happy. Define the word river.", "response": "Glad. A stream."},
]


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """One intra-op thread here and in the subprocesses: the same arithmetic in the killed and the
    uninterrupted runs, and no OpenMP spinning on a small contended machine."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@dataclass(frozen=True)
class Inputs:
    """Tiny 3-layer llamas saved to disk (``base`` shares the tokenizer), a word list, three prompts and
    a finished FFN run."""

    model: Path
    base: Path
    vocab: Path
    data: Path
    ffn_run: Path


def save_model(directory: Path, seed: int = 0, **overrides) -> Path:
    """Save a tiny llama (3 layers unless overridden) with the tiny tokenizer as a model directory."""
    tokenizer = tiny_tokenizer()
    ids = {"bos_token_id": tokenizer.bos_token_id, "eos_token_id": tokenizer.eos_token_id}
    overrides = {"num_hidden_layers": 3, **overrides}
    tiny_model("llama", seed=seed, vocab_size=len(tokenizer), **ids, **overrides).save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    return directory


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


@pytest.fixture(scope="module")
def inputs(tmp_path_factory) -> Inputs:
    root = tmp_path_factory.mktemp("faults")
    model, base = save_model(root / "model", seed=5), save_model(root / "base", seed=6)
    vocab = root / "words.tsv"
    vocab.write_text("".join(f"{w}\t{1.0 / (i + 1)}\n" for i, w in enumerate(WORDS)))
    data = write_jsonl(root / "data.jsonl", EXAMPLES)
    ffn_run = root / "ffn"
    assert main(ffn_argv(Inputs(model, base, vocab, data, ffn_run), ffn_run)) == 0
    return Inputs(model, base, vocab, data, ffn_run)


def method_argv(command: str, inputs: Inputs, out: Path, *options: str) -> list[str]:
    """The argv of a method command on the inputs' model: its input file, --out, then ``options``."""
    given = {"attribute": ("--data", inputs.data), "heads": ("--vocab", inputs.vocab), "ffn": ("--vocab", inputs.vocab)}
    flag, path = given[command]
    return [command, "--model", str(inputs.model), flag, str(path), "--out", str(out), *options]


def attribute_argv(inputs: Inputs, out: Path) -> list[str]:
    return method_argv("attribute", inputs, out, "--max-new-tokens", "3")


def heads_argv(inputs: Inputs, out: Path) -> list[str]:
    return method_argv("heads", inputs, out, "--cooccurrence", "none", "--top-k", "5")


def ffn_argv(inputs: Inputs, out: Path) -> list[str]:
    return method_argv("ffn", inputs, out, "--components", "4", "--top-k", "5")


def annotate_argv(inputs: Inputs, out: Path) -> list[str]:
    return ["annotate", str(inputs.ffn_run), "--annotator", "lexical", "--words", "5", "--out", str(out)]


def compare_argv(inputs: Inputs, out: Path) -> list[str]:
    argv = ["compare", str(inputs.base), str(inputs.model), "--data", str(inputs.data), "--vocab", str(inputs.vocab)]
    return (
        argv
        + ["--out", str(out), "--cooccurrence", "none", "--top-k", "5", "--components", "4"]
        + [
            "--max-new-tokens",
            "3",
        ]
    )


ARGV = {"attribute": attribute_argv, "heads": heads_argv, "ffn": ffn_argv}


# ---------------------------------------------------------------- kill -9 and resume


@dataclass(frozen=True)
class KillCase:
    """One command killed at one point: ``kill`` is the killpoint environment (see tests/killpoint).

    ``finished`` is the number of unit records on disk at the kill; ``tables`` the final outputs
    compared with an uninterrupted run; ``volatile_meta`` unit meta keys that legitimately differ
    between runs (timings). Another command is one more entry.
    """

    name: str
    argv: Callable[[Inputs, Path], list[str]]
    kill: dict[str, str]
    finished: int
    tables: tuple[str, ...]
    volatile_meta: tuple[str, ...] = field(default=())


def kill_at_unit(n: int, mode: str = "before") -> dict[str, str]:
    return {"SHIFTLENS_TEST_KILL_AT_UNIT": str(n), "SHIFTLENS_TEST_KILL_MODE": mode}


KILL_CASES = [
    KillCase("attribute-before-unit-2", attribute_argv, kill_at_unit(2), 1, ("summary.csv",)),
    KillCase("heads-halfway-unit-2", heads_argv, kill_at_unit(2, "halfway"), 1, ("heads.parquet", "heads.tsv")),
    KillCase("ffn-halfway-unit-3", ffn_argv, kill_at_unit(3, "halfway"), 2, ("concepts.parquet", "concepts.tsv")),
    # Annotation keeps one unit per layer (the FFN run's 3): killed before the tables, the rerun only
    # writes them.
    KillCase(
        "annotate-lexical-before-labels",
        annotate_argv,
        {"SHIFTLENS_TEST_KILL_AT_CALL": "shiftlens.ffn.labels:write_labels:1"},
        3,
        ("labels.parquet", "summary.json"),
    ),
    # 26 units: per model (tuned, then base) 3 examples, 3 + 3 layers and 4 finished steps. Unit 19 is
    # the base model's second heads layer. Tables holding paths (results.json, report.html) differ anyway.
    KillCase(
        "compare-halfway-unit-19",
        compare_argv,
        kill_at_unit(19, "halfway"),
        18,
        (
            "attribution/tuned/summary.csv",
            "attribution/base/summary.csv",
            "heads/base/heads.tsv",
            "ffn/base/concepts.tsv",
            "ffn/base/annotations/labels.parquet",
            "analysis/instructions/scores.csv",
            "analysis/instructions/table1.csv",
            "analysis/heads/table3.csv",
        ),
        volatile_meta=("seconds",),
    ),
]


def run_killable(argv: list[str], kill: dict[str, str]) -> subprocess.CompletedProcess:
    """Run the CLI in a subprocess with the killpoint sitecustomize active."""
    path = os.pathsep.join(p for p in (str(KILLPOINT), os.environ.get("PYTHONPATH")) if p)
    env = {**os.environ, "PYTHONPATH": path, "OMP_NUM_THREADS": "1", **kill}
    command = [sys.executable, "-m", "shiftlens.cli.main", *argv]
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)


def unit_files(out: Path) -> dict[str, tuple[int, int]]:
    """(inode, mtime_ns) of every finished unit file under ``out`` (nested run directories included)."""
    return {
        str(p.relative_to(out)): (p.stat().st_ino, p.stat().st_mtime_ns)
        for p in sorted(out.rglob("units/*"))
        if not p.name.startswith(".")
    }


def finished(files: dict[str, tuple[int, int]]) -> dict[str, tuple[int, int]]:
    """The unit files whose unit has its record (a kill may leave an array file without one)."""
    records = {name.removesuffix(".json") for name in files if name.endswith(".json")}
    return {name: stat for name, stat in files.items() if name.rsplit(".", 1)[0] in records}


def leftovers(out: Path) -> list[str]:
    """Temp files and array files without a record, under ``out``."""
    files = unit_files(out)
    return sorted({str(p.relative_to(out)) for p in out.rglob(".*.tmp")} | (files.keys() - finished(files).keys()))


def stored_units(out: Path, volatile: tuple[str, ...] = ()) -> dict[str, tuple[dict, dict[str, np.ndarray]]]:
    """Every unit's meta (volatile keys dropped) and arrays, of every run directory under ``out``."""
    units = {}
    for manifest in sorted(out.rglob("manifest.json")):
        for name, meta, arrays in read_units(manifest.parent):
            kept = {k: v for k, v in meta.items() if k not in volatile}
            units[f"{manifest.parent.relative_to(out)}/{name}"] = (kept, arrays)
    return units


def assert_same_units(got: dict, expected: dict) -> None:
    assert sorted(got) == sorted(expected)
    for name, (meta, arrays) in expected.items():
        assert got[name][0] == meta, name
        assert sorted(got[name][1]) == sorted(arrays), name
        for key, array in arrays.items():
            np.testing.assert_array_equal(got[name][1][key], array, err_msg=f"{name}:{key}")


def assert_same_table(got: Path, expected: Path) -> None:
    if got.suffix == ".parquet":
        rows = [json.dumps(pq.read_table(path).to_pylist()) for path in (got, expected)]  # NaN == NaN here
        assert rows[0] == rows[1], got.name
    else:
        assert got.read_bytes() == expected.read_bytes(), got.name


@pytest.mark.parametrize("case", KILL_CASES, ids=lambda case: case.name)
def test_kill_anywhere_then_rerun_equals_an_uninterrupted_run(case, inputs, tmp_path):
    whole, killed = tmp_path / "whole", tmp_path / "killed"
    assert main(case.argv(inputs, whole)) == 0
    result = run_killable(case.argv(inputs, killed), case.kill)
    assert result.returncode == -signal.SIGKILL, result.stderr[-3000:]
    before = finished(unit_files(killed))
    assert sum(name.endswith(".json") for name in before) == case.finished
    halfway = case.kill.get("SHIFTLENS_TEST_KILL_MODE") == "halfway"
    assert len(leftovers(killed)) == halfway  # the halfway kill leaves one array file without its record

    assert main(case.argv(inputs, killed)) == 0
    after = unit_files(killed)
    assert {name: after[name] for name in before} == before  # no finished unit rewritten
    assert len(after) == len(unit_files(whole))
    assert not leftovers(killed)
    assert_same_units(stored_units(killed, case.volatile_meta), stored_units(whole, case.volatile_meta))
    for table in case.tables:
        assert_same_table(killed / table, whole / table)


# ---------------------------------------------------------------- unwritable, full, corrupted, locked


def error_line(capsys) -> str:
    """The CLI's one-line error: the last stderr line (transformers' loading bars may precede it)."""
    last = capsys.readouterr().err.strip().splitlines()[-1]
    assert last.startswith("shiftlens: error: "), last
    return last


@pytest.mark.parametrize("command", sorted(ARGV))
def test_output_under_a_regular_file_is_a_clear_error(command, inputs, tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("x")  # a path under a regular file cannot be created, even by root
    assert main(ARGV[command](inputs, blocker / "run")) == 2
    assert f"cannot write {blocker / 'run'}" in error_line(capsys)


def in_mount_namespace(script: str) -> subprocess.CompletedProcess:
    """Run a shell script as root of a new user + mount namespace (real tmpfs and read-only mounts)."""
    return subprocess.run(["unshare", "-rm", "sh", "-c", script], capture_output=True, text=True, timeout=300)


def mount_namespaces_available() -> bool:
    if shutil.which("unshare") is None:
        return False
    try:
        return in_mount_namespace("mount -t tmpfs none /mnt && touch /mnt/x").returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


needs_mounts = pytest.mark.skipif(
    not mount_namespaces_available(), reason="unprivileged user+mount namespaces unavailable (unshare -rm)"
)


def cli_line(argv: list[str]) -> str:
    return " ".join(["OMP_NUM_THREADS=1", sys.executable, "-m", "shiftlens.cli.main", *(f"'{a}'" for a in argv)])


@needs_mounts
def test_read_only_output_directory_is_a_clear_error_even_for_root(inputs, tmp_path):
    target = tmp_path / "ro"
    target.mkdir()
    script = f"mount --bind {target} {target} && mount -o remount,bind,ro {target} && "
    result = in_mount_namespace(script + cli_line(attribute_argv(inputs, target / "run")))
    assert result.returncode == 2, result.stderr[-2000:]
    assert f"cannot write to {target / 'run'}: Read-only file system" in result.stderr.strip().splitlines()[-1]


@needs_mounts
def test_full_disk_is_a_clear_error_and_a_rerun_with_space_resumes(inputs, tmp_path, capsys):
    """A real full tmpfs: the run stops naming the path and keeps its finished units; moved to a disk
    with space (cp -a keeps mtimes), the rerun finishes it without rewriting them."""
    disk, moved, whole = tmp_path / "disk", tmp_path / "moved", tmp_path / "whole"
    disk.mkdir()
    # 12 KiB: the manifest and the first example fit, a later one does not.
    command = cli_line(attribute_argv(inputs, disk / "run"))
    result = in_mount_namespace(
        f"mount -t tmpfs -o size=12k none {disk} && {{ {command}; echo rc=$?; cp -a {disk}/run {moved}; }}"
    )
    assert "rc=2" in result.stdout, result.stderr[-3000:]
    assert re.search(rf"shiftlens: error: no space left on the device holding {disk}/run/\S+", result.stderr)
    kept = finished(unit_files(moved))
    assert 2 <= len(kept) < 2 * len(EXAMPLES)
    assert main(attribute_argv(inputs, moved)) == 0
    assert {name: mtime for name, (_, mtime) in finished(unit_files(moved)).items() if name in kept} == {
        name: mtime for name, (_, mtime) in kept.items()
    }
    assert main(attribute_argv(inputs, whole)) == 0
    assert_same_units(stored_units(moved), stored_units(whole))
    assert_same_table(moved / "summary.csv", whole / "summary.csv")


def test_simulated_full_disk_names_the_path_and_keeps_finished_units(inputs, tmp_path, monkeypatch, capsys):
    """ENOSPC when creating the second example's array file (works where mounts are not allowed)."""
    out = tmp_path / "run"
    real = atomic.tempfile.mkstemp

    def full_for_b(*args, **kwargs):
        if kwargs.get("prefix", "").startswith(".b.safetensors"):
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(*args, **kwargs)

    monkeypatch.setattr(atomic.tempfile, "mkstemp", full_for_b)
    assert main(attribute_argv(inputs, out)) == 2
    line = error_line(capsys)
    assert f"no space left on the device holding {out / 'units' / 'b.safetensors'}" in line
    assert "rerun to resume" in line
    kept = unit_files(out)
    assert sorted(kept) == ["units/a.json", "units/a.safetensors"]
    monkeypatch.setattr(atomic.tempfile, "mkstemp", real)
    assert main(attribute_argv(inputs, out)) == 0
    assert {name: unit_files(out)[name] for name in kept} == kept
    assert len(unit_files(out)) == 2 * len(EXAMPLES)


@pytest.mark.parametrize("damage", ["array", "record"])
@pytest.mark.parametrize("command", sorted(ARGV))
def test_corrupted_unit_is_detected_and_only_it_recomputed(command, damage, inputs, tmp_path):
    out = tmp_path / "run"
    assert main(ARGV[command](inputs, out)) == 0
    expected = stored_units(out)
    tables = {p.name: p.read_bytes() for p in out.iterdir() if p.suffix in (".csv", ".tsv")}
    array = sorted((out / "units").glob("*.safetensors"))[1]
    if damage == "array":
        victim, raw = array, bytearray(array.read_bytes())
        raw[-3] ^= 0xFF  # a flipped bit in the data: safetensors still parses it, only the checksum can tell
    else:
        victim, raw = array.with_suffix(".json"), bytearray(array.with_suffix(".json").read_bytes()[:-20])
    victim.write_bytes(bytes(raw))
    before = unit_files(out)

    with pytest.raises(storage.StorageError, match=f"{re.escape(str(victim))} (is unreadable|.*checksum)"):
        stored_units(out)  # readers (the analyses) refuse it instead of using wrong numbers
    assert main(ARGV[command](inputs, out)) == 0
    after = unit_files(out)
    changed = sorted(name for name in before if after[name] != before[name])
    assert changed == sorted(str(array.relative_to(out).with_suffix(suffix)) for suffix in (".json", ".safetensors"))
    assert_same_units(stored_units(out), expected)
    assert {p.name: p.read_bytes() for p in out.iterdir() if p.suffix in (".csv", ".tsv")} == tables


@pytest.mark.parametrize("command", sorted(ARGV))
def test_a_second_run_into_a_busy_directory_is_refused(command, inputs, tmp_path, capsys):
    out = tmp_path / "run"
    with RunDirectory(out, "held by another process", {}):
        assert main(ARGV[command](inputs, out)) == 2
        assert f"{out} is in use by another shiftlens process" in error_line(capsys)
    assert sorted(p.name for p in out.iterdir()) == [".lock", "manifest.json"]  # nothing of the refused run
