"""The restricted unpickler: numpy arrays and plain containers load; anything that could run code is refused."""

from __future__ import annotations

import os
import pickle

import numpy as np
import pytest

from shiftlens.errors import ShiftlensError
from shiftlens.safe_pickle import UnsafePickleError, load_restricted, loads_restricted


def test_round_trips_containers_and_arrays():
    obj = {
        "ID": "x",
        "Input": ["▁a", "<0x0A>"],
        "nested": (1, 2.5, None, True, {"k": [-3]}),
        "Explain": np.arange(12, dtype=np.float32).reshape(3, 4),
        "ints": np.array([1, 2], dtype=np.int64),
    }
    for protocol in (2, 4, 5):
        back = loads_restricted(pickle.dumps(obj, protocol=protocol))
        assert back["Input"] == obj["Input"] and back["nested"] == obj["nested"]
        np.testing.assert_array_equal(back["Explain"], obj["Explain"])
        assert back["Explain"].dtype == np.float32


def test_numpy1_module_path_is_accepted():
    legacy = pickle.dumps(np.ones(3), protocol=2).replace(b"numpy._core.multiarray", b"numpy.core.multiarray")
    assert b"numpy.core.multiarray" in legacy
    np.testing.assert_array_equal(loads_restricted(legacy), np.ones(3))


class _RunsCode:
    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_code_execution_is_refused_and_not_run(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pkl"
    path.write_bytes(pickle.dumps({"Explain": _RunsCode(str(marker))}))
    with pytest.raises(UnsafePickleError, match=r"evil\.pkl.*(posix|os)\.system") as info:
        load_restricted(path)
    assert isinstance(info.value, ShiftlensError)
    assert not marker.exists()


@pytest.mark.parametrize(
    "payload",
    [pickle.dumps(eval), pickle.dumps(np.load), pickle.dumps({1}, protocol=2), pickle.dumps(np.float64(1))],
)
def test_other_globals_are_refused(payload):
    with pytest.raises(UnsafePickleError, match="refusing to load global"):
        loads_restricted(payload)


@pytest.mark.parametrize(
    "obj,kind", [({1, 2}, "set"), (np.array([{"a": 1}], dtype=object), "ndarray"), (b"raw", "bytes")]
)
def test_objects_outside_the_plain_types_are_refused(obj, kind):
    with pytest.raises(UnsafePickleError, match=f"holds a {kind}"):
        loads_restricted(pickle.dumps({"x": [obj]}, protocol=4))


def test_codecs_encode_is_latin1_only():
    payload = b"\x80\x02c_codecs\nencode\nX\x03\x00\x00\x00abcX\x06\x00\x00\x00base64\x86R."
    with pytest.raises(UnsafePickleError, match="codec 'base64'"):
        loads_restricted(payload, "codec.pkl")


def test_garbage_and_missing_files_give_clear_errors(tmp_path):
    with pytest.raises(UnsafePickleError, match="not a readable pickle"):
        loads_restricted(b"not a pickle", "junk.pkl")
    with pytest.raises(UnsafePickleError, match="cannot read"):
        load_restricted(tmp_path / "missing.pkl")


def test_released_pickles_load(paper_data):
    record = load_restricted(paper_data / "results/attribution_interpret/ifa_vicuna_7b/user_oriented_task_0.pkl")
    assert set(record) == {"ID", "Input", "Output", "Reference", "Explain"}
    assert record["Explain"].shape == (len(record["Input"]), len(record["Output"]))
