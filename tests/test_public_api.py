"""The public API of `shiftlens/__init__.py`: every name resolves, lazily, to the library's own object."""

from __future__ import annotations

import importlib
import subprocess
import sys

import pytest

import shiftlens


@pytest.mark.parametrize("name", sorted(set(shiftlens._LAZY) - {"compare"}))
def test_every_public_name_is_the_defining_modules_object(name: str) -> None:
    module = importlib.import_module(shiftlens._LAZY[name])
    assert getattr(shiftlens, name) is getattr(module, name)


def test_compare_is_the_package_and_calls_the_function(monkeypatch: pytest.MonkeyPatch) -> None:
    from shiftlens.compare import pipeline

    called = []
    monkeypatch.setattr("shiftlens.compare.compare", lambda *a, **k: called.append((a, k)) or "summary")
    assert shiftlens.compare("b", "t", limit=1) == "summary" and called == [(("b", "t"), {"limit": 1})]
    assert shiftlens.compare.CompareSettings is shiftlens.CompareSettings
    monkeypatch.undo()
    assert shiftlens.compare.compare is pipeline.compare


def test_importing_shiftlens_does_not_load_torch() -> None:
    code = "import sys, shiftlens; print('torch' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip() == (
        "False"
    )


def test_an_unknown_name_is_an_attribute_error() -> None:
    with pytest.raises(AttributeError, match="no attribute 'atribute'"):
        shiftlens.atribute  # noqa: B018
