"""Test-only kill points: put this directory on PYTHONPATH and a shiftlens process SIGKILLs itself.

``SHIFTLENS_TEST_KILL_AT_UNIT=N`` wraps `shiftlens.storage.RunDirectory.write_unit` so the process
dies when about to write its N-th unit (counted over every run directory of the process).
``SHIFTLENS_TEST_KILL_MODE`` says where: ``before`` (default: nothing of unit N written) or
``halfway`` (unit N's array file written, the record that marks it complete not; a unit without
arrays dies before).
``SHIFTLENS_TEST_KILL_AT_CALL=module:function:N`` kills on the N-th call of any module-level function
instead, for commands that write no units. Production code carries no hook: this file is the hook.
"""

from __future__ import annotations

import functools
import importlib
import os
import signal


def _die() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


def _kill_at_unit(target: int, mode: str) -> None:
    from shiftlens import storage

    if mode not in ("before", "halfway"):
        raise SystemExit(f"SHIFTLENS_TEST_KILL_MODE must be before or halfway, got {mode!r}")
    state = {"units": 0, "armed": False}
    write_unit, write_bytes = storage.RunDirectory.write_unit, storage.atomic_write_bytes

    @functools.wraps(write_unit)
    def counting_write_unit(self, name, meta, arrays=None):
        state["units"] += 1
        if state["units"] == target:
            if mode == "before" or not arrays:
                _die()
            state["armed"] = True
        return write_unit(self, name, meta, arrays)

    @functools.wraps(write_bytes)
    def dying_write_bytes(path, data):
        write_bytes(path, data)
        if state["armed"] and str(path).endswith(".safetensors"):
            _die()

    storage.RunDirectory.write_unit = counting_write_unit
    storage.atomic_write_bytes = dying_write_bytes


def _kill_at_call(spec: str) -> None:
    module_name, function_name, count = spec.rsplit(":", 2)
    module = importlib.import_module(module_name)
    function, target, calls = getattr(module, function_name), int(count), [0]

    @functools.wraps(function)
    def dying(*args, **kwargs):
        calls[0] += 1
        if calls[0] == target:
            _die()
        return function(*args, **kwargs)

    setattr(module, function_name, dying)


if os.environ.get("SHIFTLENS_TEST_KILL_AT_UNIT"):
    _kill_at_unit(int(os.environ["SHIFTLENS_TEST_KILL_AT_UNIT"]), os.environ.get("SHIFTLENS_TEST_KILL_MODE", "before"))
if os.environ.get("SHIFTLENS_TEST_KILL_AT_CALL"):
    _kill_at_call(os.environ["SHIFTLENS_TEST_KILL_AT_CALL"])
