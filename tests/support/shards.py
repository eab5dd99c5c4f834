"""Sharded runs for tests: the same run whole and as two shards plus the merge."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from shiftlens.storage import Shard


def whole_and_sharded(explain: Callable[..., object], root: Path, table: str, order=(0, 1)) -> tuple[Path, Path]:
    """``explain(out, shard=...)`` whole, then as 2 shards (in ``order``) and the merge; shards write no ``table``."""
    explain(root / "whole")
    for index in order:
        explain(root / "sharded", shard=Shard(index, 2))
        assert not (root / "sharded" / table).exists()  # shards write no tables
    explain(root / "sharded")  # the merge: computes nothing
    return root / "whole", root / "sharded"
