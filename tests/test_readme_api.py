"""The README's "Library API" example runs as written (in a temporary directory, on the organism)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def api_example() -> str:
    """The first Python block of the README's "Library API" section."""
    section = README.read_text(encoding="utf-8").split("## Library API", 1)[1]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


def test_the_library_api_example_runs(tmp_path: Path) -> None:
    script = tmp_path / "example.py"
    script.write_text(api_example(), encoding="utf-8")
    done = subprocess.run([sys.executable, str(script)], cwd=tmp_path, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "'table1'" in done.stdout  # analyze_instructions(...).to_json() has the paper's Table 1
    for name in ("base", "tuned"):
        assert (tmp_path / "out/api" / name / "heads/heads.parquet").is_file()
        assert (tmp_path / "out/api" / name / "ffn/annotations/labels.parquet").is_file()
    assert any((tmp_path / "out/api/analysis").iterdir())
