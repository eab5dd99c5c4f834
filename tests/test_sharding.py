"""Data-parallel attribution: `--shard i/n` job arrays and torchrun ranks give exactly the single-process run."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch
from conftest import save_tiny_model

from shiftlens.attribution.pipeline import shard_failures_path
from shiftlens.cli.main import main
from shiftlens.distributed import Launch, rank_device
from shiftlens.errors import ShiftlensError
from shiftlens.storage import Shard, read_manifest, read_units

ROWS = [
    {"id": "a", "prompt": "Summarize the following text in one sentence.", "response": "The cat sleeps."},
    {"id": "b", "prompt": "Write a short poem about the sea.", "instruction": ["Write"]},  # generated
    {"id": "c", "prompt": "Give a synonym of happy.", "response": "Glad.", "instruction": ["synonym"]},
    {"id": "d", "prompt": "Define the word river.", "response": "x " * 1100},  # beyond the context: fails
    {"id": "e", "prompt": "Translate into French: the cat sleeps.", "response": "Le chat dort."},
    {"id": "f", "prompt": "Define the word river. Then explain it.", "response": "A stream, then water."},
]


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    """A tiny model on disk, six examples (one failing, on shard 1 of 2) and the CLI arguments."""
    root = tmp_path_factory.mktemp("sharding")
    save_tiny_model(root / "model")
    data = root / "data.jsonl"
    data.write_text("".join(json.dumps(row) + "\n" for row in ROWS))
    args = ["attribute", "--model", str(root / "model"), "--data", str(data), "--max-new-tokens", "3"]
    return root, args


@pytest.fixture(scope="module")
def single(setup):
    """The single-process reference run (it exits 2: example d fails)."""
    root, args = setup
    assert main([*args, "--out", str(root / "single")]) == 2
    return root / "single"


def assert_same_run(run, reference) -> None:
    """Same units (meta and arrays exactly), same summary.csv, same manifest counts and failures."""
    mine = {name: (meta, arrays) for name, meta, arrays in read_units(run)}
    theirs = {name: (meta, arrays) for name, meta, arrays in read_units(reference)}
    assert sorted(mine) == sorted(theirs) and len(mine) == 5
    for name, (meta, arrays) in theirs.items():
        assert mine[name][0] == meta
        assert mine[name][1].keys() == arrays.keys()
        for key, value in arrays.items():
            np.testing.assert_array_equal(mine[name][1][key], value)
    assert (run / "summary.csv").read_text() == (reference / "summary.csv").read_text()
    manifest, expected = read_manifest(run), read_manifest(reference)
    assert manifest["counts"] == expected["counts"] == {"examples": 6, "stored": 5, "failed": 1}
    assert manifest["failed"] == expected["failed"] and "longer than the model's context" in manifest["failed"]["d"]
    assert manifest["params"] == expected["params"]
    assert not list((run / "failures").glob("*.json"))  # folded into the manifest by the merge


def unit_stats(run) -> dict[str, tuple[int, int]]:
    """(inode, mtime_ns) of every unit file: unchanged files were not recomputed."""
    return {p.name: (p.stat().st_ino, p.stat().st_mtime_ns) for p in sorted((run / "units").iterdir())}


def test_job_array_shards_then_merge_equal_the_single_run(setup, single, counted, capsys):
    root, args = setup
    out = root / "array"
    argv = [*args, "--out", str(out)]
    assert main([*argv, "--shard", "0/2"]) == 0  # a, c, e
    printed = capsys.readouterr().out
    assert "shard 0/2 stored" in printed and "without --shard to merge" in printed
    assert not (out / "summary.csv").exists() and "counts" not in read_manifest(out)
    assert json.loads(shard_failures_path(out, Shard(0, 2)).read_text()) == {}
    assert main([*argv, "--shard", "1/2"]) == 2  # b, d, f; d fails and is named with the shard's file
    err = capsys.readouterr().err
    assert "1 of 3 examples failed" in err and "shard-1-of-2.json" in err and "longer than the model's context" in err
    assert list(json.loads(shard_failures_path(out, Shard(1, 2)).read_text())) == ["d"]
    assert len(counted) == 5  # d fails before the core: beyond the context
    before = unit_stats(out)
    assert main(argv) == 2  # the merge: retries d, computes nothing stored
    assert len(counted) == 5 and unit_stats(out) == before
    assert_same_run(out, single)
    assert main([*argv, "--shard", "1/2"]) == 2 and len(counted) == 5 and unit_stats(out) == before


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def torchrun(*argv: str) -> subprocess.CompletedProcess:
    """Run ``argv`` under ``torch.distributed.run`` with 2 CPU processes (gloo); a hang fails the test."""
    # CPU kernels sum in an order that depends on the thread count: give each rank the reference run's
    # (torchrun would set 1), so that bit-exact equality is a fair demand.
    env = {**os.environ, "OMP_NUM_THREADS": str(torch.get_num_threads()), "HF_HUB_OFFLINE": "1"}
    for name in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        env.pop(name, None)
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node=2", f"--master-port={free_port()}"]
    return subprocess.run([*command, *argv], env=env, capture_output=True, text=True, timeout=300)


def test_torchrun_ranks_equal_the_single_run(setup, single):
    root, args = setup
    done = torchrun("-m", "shiftlens.cli.main", *args, "--out", str(root / "ranks"))
    assert done.returncode != 0, done.stderr  # rank 0 reports the failure of d, computed by rank 1
    assert (
        "shiftlens: error: 1 of 6 examples failed" in done.stderr and "longer than the model's context" in done.stderr
    )
    assert "rank 1/2: shard stored" in done.stdout
    assert_same_run(root / "ranks", single)


def test_a_crashing_rank_still_meets_the_others_and_rank_0_merges(tmp_path):
    script = tmp_path / "crash.py"
    script.write_text(
        textwrap.dedent(
            f"""
            import torch.distributed as dist
            from pathlib import Path
            from shiftlens.distributed import launched, process_group, run_then_merge

            def work():
                if dist.get_rank() == 1:
                    raise RuntimeError("rank 1 broke")

            with process_group("cpu"):
                try:
                    result = run_then_merge(work, lambda: "merged")
                except RuntimeError as exc:
                    result = str(exc)
                Path({str(tmp_path)!r}, f"rank{{launched().shard.index}}").write_text(str(result))
            """
        )
    )
    done = torchrun(str(script))
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "rank0").read_text() == "merged" and (tmp_path / "rank1").read_text() == "rank 1 broke"


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("2/2", "invalid shard 2/2: need 0 <= i < n"),
        ("1/0", "invalid shard 1/0"),
        ("a/2", "--shard takes i/n with whole numbers, got 'a/2'"),
        ("1", "--shard takes i/n"),
        ("0/2/3", "--shard takes i/n"),
    ],
)
def test_bad_shard_values_are_refused(setup, tmp_path, capsys, value, message):
    _, args = setup
    assert main([*args, "--out", str(tmp_path / "run"), f"--shard={value}"]) == 2
    assert f"shiftlens: error: {message}" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


def test_shard_and_launcher_together_are_refused(setup, tmp_path, capsys, monkeypatch):
    _, args = setup
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "0")
    assert main([*args, "--out", str(tmp_path / "run"), "--shard", "0/2"]) == 2
    assert "cannot be combined with torchrun or accelerate launch" in capsys.readouterr().err


def test_each_rank_gets_its_gpu_and_device_auto_is_refused():
    launch = Launch(Shard(3, 4), local_rank=1)
    assert rank_device("cuda", launch) == "cuda:1"
    assert rank_device("cpu", launch) == "cpu" and rank_device("cuda:0", launch) == "cuda:0"
    with pytest.raises(ShiftlensError, match="--device auto spreads one model"):
        rank_device("auto", launch)
