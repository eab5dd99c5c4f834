"""Shared table output: rich console tables and CSV files written atomically from the same rows."""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from rich import box
from rich.console import Console
from rich.table import Table

from shiftlens.storage import atomic_write_text

Row = Sequence[Any]


def format_cell(value: Any, digits: int = 4) -> str:
    """A value as table text: floats to `digits` significant digits, NaN/None as an em dash."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "—"
    if isinstance(value, float):
        return f"{value:.{digits}g}"
    return str(value)


def print_table(title: str, columns: Sequence[str], rows: Sequence[Row], console: Console | None = None) -> None:
    """Print rows as a compact rich table (numbers right-aligned); a pipe or file gets ≥ 120 columns."""
    table = Table(title=title, box=box.SIMPLE_HEAD, pad_edge=False, title_justify="left")
    for index, name in enumerate(columns):
        numeric = any(isinstance(row[index], int | float) for row in rows)
        table.add_column(name, justify="right" if numeric else "left")
    for row in rows:
        table.add_row(*(format_cell(value) for value in row))
    if console is None:
        console = Console()
        if not console.is_terminal:
            console = Console(width=max(console.width, 120))
    console.print(table)


def write_csv(path: str | Path, columns: Sequence[str], rows: Sequence[Row]) -> Path:
    """Write rows as a CSV file with a header, atomically; NaN/None become empty cells."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(columns)
    for row in rows:
        writer.writerow(
            "" if v is None or (isinstance(v, float) and math.isnan(v)) else (repr(v) if isinstance(v, float) else v)
            for v in row
        )
    atomic_write_text(Path(path), buffer.getvalue())
    return Path(path)
