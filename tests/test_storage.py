"""Run directories: resumable units, checksums, locks and clear errors for unusable directories."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest

from shiftlens.runs import WrongRunKind
from shiftlens.storage import RunDirectory, StorageError, read_units


def test_units_round_trip_and_resume(tmp_path) -> None:
    with RunDirectory(tmp_path / "run", "demo", {"k": 1}) as run:
        run.write_unit("a", {"x": 1}, {"m": np.arange(6, dtype=np.float32).reshape(2, 3)})
        run.write_unit("b", {"x": 2})
    with RunDirectory(tmp_path / "run", "demo", {"k": 1}) as run:
        assert run.unit_names() == ["a", "b"]
        assert run.has_unit("a") and run.has_unit("b") and not run.has_unit("c")
        meta, arrays = run.read_unit("a")
        assert meta == {"x": 1}
        np.testing.assert_array_equal(arrays["m"], np.arange(6).reshape(2, 3))
    assert [name for name, _, _ in read_units(tmp_path / "run")] == ["a", "b"]


def test_corrupted_array_is_detected(tmp_path) -> None:
    with RunDirectory(tmp_path, "demo", {}) as run:
        run.write_unit("a", {}, {"m": np.ones(100, dtype=np.float32)})
        data = tmp_path / "units" / "a.safetensors"
        raw = bytearray(data.read_bytes())
        raw[-5] ^= 0xFF
        data.write_bytes(bytes(raw))
        assert not run.has_unit("a")


def test_other_parameters_or_kind_are_refused(tmp_path) -> None:
    RunDirectory(tmp_path, "demo", {"k": 1}).close()
    with pytest.raises(StorageError, match="other settings \\(k: 1 → 2\\): .*--force"):
        RunDirectory(tmp_path, "demo", {"k": 2})
    with pytest.raises(WrongRunKind, match=f"^{tmp_path} is a demo run, not a other run$"):
        RunDirectory(tmp_path, "other", {"k": 1})


def test_second_process_is_refused_and_a_killed_holder_releases(tmp_path) -> None:
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys,time; from shiftlens.storage import RunDirectory;"
            f"r=RunDirectory({str(tmp_path)!r}, 'demo', {{}}); print('locked', flush=True); time.sleep(60)",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert holder.stdout.readline().strip() == "locked"
    with pytest.raises(StorageError, match="in use by another shiftlens process"):
        RunDirectory(tmp_path, "demo", {})
    holder.kill()
    holder.wait()
    RunDirectory(tmp_path, "demo", {}).close()


@pytest.mark.skipif(os.geteuid() == 0, reason="root can write anywhere; covered by the read-only mount case")
def test_unwritable_directory_is_a_clear_error(tmp_path) -> None:
    locked = tmp_path / "ro"
    locked.mkdir()
    locked.chmod(0o500)
    with pytest.raises(StorageError, match="cannot write"):
        RunDirectory(locked / "run", "demo", {})


def test_output_path_that_is_a_file_is_a_clear_error(tmp_path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(StorageError, match="cannot write"):
        RunDirectory(blocker / "run", "demo", {})


def test_bad_unit_names_are_refused(tmp_path) -> None:
    with RunDirectory(tmp_path, "demo", {}) as run, pytest.raises(ValueError, match="invalid unit name"):
        run.write_unit("../escape", {})


def test_shards_share_a_directory_but_not_a_shard(tmp_path) -> None:
    from shiftlens.storage import Shard

    first = RunDirectory(tmp_path, "demo", {"k": 1}, shard=Shard(0, 2))
    second = RunDirectory(tmp_path, "demo", {"k": 1}, shard=Shard(1, 2))
    with pytest.raises(StorageError, match="this shard of"):
        RunDirectory(tmp_path, "demo", {"k": 1}, shard=Shard(1, 2))
    with pytest.raises(StorageError, match="in use"):
        RunDirectory(tmp_path, "demo", {"k": 1})
    first.write_unit("a", {"from": 0})
    second.write_unit("b", {"from": 1})
    first.close()
    second.close()
    with RunDirectory(tmp_path, "demo", {"k": 1}) as whole:
        assert whole.unit_names() == ["a", "b"]


def test_shard_parsing_and_selection(monkeypatch) -> None:
    from shiftlens.storage import Shard

    assert Shard.parse("1/3").select(list(range(7))) == [1, 4]
    for bad in ("3/3", "x/2", "1"):
        with pytest.raises(StorageError, match="shard"):
            Shard.parse(bad)
    monkeypatch.setenv("WORLD_SIZE", "4")
    monkeypatch.setenv("RANK", "2")
    assert Shard.from_environment() == Shard(2, 4)
    monkeypatch.setenv("WORLD_SIZE", "1")
    assert Shard.from_environment() is None


def test_full_disk_is_a_clear_error(tmp_path, monkeypatch) -> None:
    import errno

    from shiftlens import storage

    def full(*_args, **_kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    with RunDirectory(tmp_path, "demo", {}) as run:
        run.write_unit("done", {"ok": True})
        monkeypatch.setattr(storage.os, "replace", full)
        with pytest.raises(StorageError, match="no space left"):
            run.write_unit("next", {"ok": True})
        assert run.has_unit("done") and not run.has_unit("next")
