"""Shared plotting helpers: headless matplotlib (Agg) figures saved as both PNG and SVG."""

from __future__ import annotations

from io import BytesIO
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402  (the backend must be chosen first)
from matplotlib.figure import Figure  # noqa: E402

from shiftlens.storage import atomic_write_bytes  # noqa: E402

BASE_COLOR = "#4C72B0"
TUNED_COLOR = "#DD8452"


def subplots(ncols: int, *, width: float = 4.0, height: float = 3.2, **kwargs) -> tuple[Figure, list]:
    """A one-row figure of `ncols` axes (always returned as a list), sized per panel."""
    fig, axes = plt.subplots(1, ncols, figsize=(width * ncols, height), squeeze=False, **kwargs)
    return fig, list(axes[0])


STABLE = {"svg.hashsalt": "shiftlens"}  # fixed SVG element ids instead of random ones
NO_DATE = {"svg": {"Date": None}, "png": {}}  # no creation time in the file: two runs give the same bytes


def save_figure(fig: Figure, stem: str | Path) -> list[Path]:
    """Save a figure as STEM.png and STEM.svg (atomically, byte-identical across runs), close it, return both paths."""
    stem = Path(stem)
    fig.tight_layout()
    paths = []
    for ext in ("png", "svg"):
        path = stem.with_suffix(f".{ext}")
        buffer = BytesIO()
        with plt.rc_context(STABLE):
            fig.savefig(buffer, format=ext, dpi=120, metadata=NO_DATE[ext])
        atomic_write_bytes(path, buffer.getvalue())
        paths.append(path)
    plt.close(fig)
    return paths
