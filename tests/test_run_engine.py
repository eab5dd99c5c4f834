"""The run engine on a toy method: units, resume after a failure, failures, shards and merge, wrong kind, old format."""

from __future__ import annotations

import json

import numpy as np
import pytest

from shiftlens.attribution.records import read_attribution_run
from shiftlens.errors import ShiftlensError
from shiftlens.ffn.labels import read_labels
from shiftlens.ffn.records import read_ffn_run
from shiftlens.runs import (
    Job,
    OldRunFormat,
    RunFailures,
    Unit,
    WrongRunKind,
    check_kind,
    execute,
    model_record,
    read_vocabulary,
    shard_failures_path,
)
from shiftlens.storage import RunDirectory, Shard, read_manifest, read_units

KEYS = ("a", "b", "c", "d", "e")


class Squares(Job):
    """A toy method: unit k stores k's index squared; keys in ``broken`` fail; ``finish`` writes a table."""

    kind, noun = "squares", "number"

    def __init__(self, broken: set[str] = frozenset(), offset: int = 0, summary_note: str = "x") -> None:
        self.broken, self.computed = broken, []
        self.params = {"offset": offset}  # identity: fixes every stored unit
        self.info = {"summary": {"note": summary_note}}  # recorded only

    def units(self) -> list[Unit]:
        return [Unit(f"n-{k}", k) for k in KEYS]

    def compute(self, unit: Unit):
        if unit.key in self.broken:
            raise ShiftlensError(f"{unit.key} cannot be squared")
        self.computed.append(unit.key)
        i = KEYS.index(unit.key) + self.params["offset"]
        return {"key": unit.key}, {"value": np.array([i * i], dtype=np.int64)}

    def finish(self, run: RunDirectory, failed: dict[str, str]) -> None:
        table = {meta["key"]: int(arrays["value"][0]) for _, meta, arrays in read_units(run.path)}
        (run.path / "table.json").write_text(json.dumps(table, sort_keys=True))


def test_units_are_computed_once_failures_recorded_and_a_rerun_retries_only_them(tmp_path):
    job = Squares(broken={"c"})
    with pytest.raises(RunFailures, match=r"^1 of 5 numbers failed, .*: c: c cannot be squared$") as info:
        execute(lambda: job, tmp_path)
    assert isinstance(info.value, ShiftlensError) and info.value.failed == {"c": "c cannot be squared"}
    manifest = read_manifest(tmp_path)
    assert manifest["failed"] == {"c": "c cannot be squared"} and manifest["complete"] is False
    assert manifest["counts"] == {"numbers": 5, "stored": 4, "failed": 1} and manifest["format_version"] == 2
    assert json.loads((tmp_path / "table.json").read_text()) == {"a": 0, "b": 1, "d": 9, "e": 16}
    again = Squares()
    assert execute(lambda: again, tmp_path) == tmp_path
    assert again.computed == ["c"]  # the stored units are kept
    manifest = read_manifest(tmp_path)
    assert manifest["failed"] == {} and manifest["complete"] is True
    assert json.loads((tmp_path / "table.json").read_text())["c"] == 4


def test_identity_is_checked_and_summary_only_recorded(tmp_path):
    execute(lambda: Squares(summary_note="first"), tmp_path)
    second = Squares(summary_note="second")
    execute(lambda: second, tmp_path)  # another summary setting: resumes, computes nothing
    assert second.computed == [] and read_manifest(tmp_path)["summary"] == {"note": "first"}
    with pytest.raises(ShiftlensError, match=r"other settings \(offset: 0 → 1\)"):
        execute(lambda: Squares(offset=1), tmp_path)


def test_shards_then_merge_equal_the_whole_run(tmp_path):
    with pytest.raises(RunFailures):
        execute(lambda: Squares(broken={"d"}), tmp_path / "whole")
    first = Squares(broken={"d"})
    with pytest.raises(RunFailures, match="1 of 2 numbers failed") as info:
        execute(lambda: first, tmp_path / "sharded", shard=Shard(1, 2))  # b, d
    assert "shard-1-of-2.json" in str(info.value) and first.computed == ["b"]
    assert json.loads(shard_failures_path(tmp_path / "sharded", Shard(1, 2)).read_text()) == {
        "d": "d cannot be squared"
    }
    assert "counts" not in read_manifest(tmp_path / "sharded")  # shards never write the manifest
    zero = Squares()
    execute(lambda: zero, tmp_path / "sharded", shard=Shard(0, 2))  # a, c, e
    assert zero.computed == ["a", "c", "e"]
    merge = Squares(broken={"d"})
    with pytest.raises(RunFailures, match="1 of 5 numbers failed"):
        execute(lambda: merge, tmp_path / "sharded")  # the merge retries d only
    assert merge.computed == []
    whole, sharded = read_manifest(tmp_path / "whole"), read_manifest(tmp_path / "sharded")
    for key in ("params", "counts", "failed", "complete"):
        assert whole[key] == sharded[key]
    assert (tmp_path / "whole" / "table.json").read_text() == (tmp_path / "sharded" / "table.json").read_text()
    assert not list((tmp_path / "sharded" / "failures").glob("*.json"))


def test_a_run_of_another_kind_is_refused_by_writers_and_readers(tmp_path):
    execute(lambda: Squares(), tmp_path)
    message = f"^{tmp_path} is a squares run, not a ffn run$"
    with pytest.raises(WrongRunKind, match=message):
        RunDirectory(tmp_path, "ffn", {"offset": 0})
    with pytest.raises(WrongRunKind, match=message):
        check_kind(tmp_path, "ffn")
    with pytest.raises(WrongRunKind, match=message):
        read_ffn_run(tmp_path)
    with pytest.raises(WrongRunKind, match=f"^{tmp_path} is a squares run, not a ffn-annotations run$"):
        read_labels(tmp_path)
    with pytest.raises(WrongRunKind, match=f"^{tmp_path} is a squares run, not a attribution run$"):
        read_attribution_run(tmp_path)


def _as_format_1(path, **fields) -> None:
    manifest = read_manifest(path)
    manifest.update(format_version=1, **fields)
    (path / "manifest.json").write_text(json.dumps(manifest))


def test_a_format_1_run_is_refused_on_resume_with_what_to_do(tmp_path):
    execute(lambda: Squares(), tmp_path)
    _as_format_1(tmp_path)
    with pytest.raises(OldRunFormat, match=r"format version 1 \(shiftlens 0\.1\).*rerun into a new directory") as info:
        execute(lambda: Squares(), tmp_path)
    assert "\n" not in str(info.value)


def test_a_format_1_run_is_still_read_with_its_old_key_spellings(tmp_path):
    record = {"name": "tiny", "weight_hash": "h1", "model_type": "llama"}
    execute(lambda: Squares(), tmp_path)
    _as_format_1(tmp_path, model_info=record)
    (tmp_path / "words.json").write_text(json.dumps(["alpha", "beta"]))  # a 0.1 heads run's word file
    manifest = read_manifest(tmp_path)
    assert model_record(manifest) == record and read_vocabulary(tmp_path) == ["alpha", "beta"]
    assert model_record({"model": record}) == record  # format 2 (and 0.1 attribution runs)
