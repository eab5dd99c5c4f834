"""README.md's command list and docs/cli.md are generated from the parser (scripts/cli_reference.py) and current."""

from __future__ import annotations

import importlib.util
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "cli_reference.py"


def reference_script():
    spec = importlib.util.spec_from_file_location("cli_reference", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_readme_and_docs_cli_are_current():
    script = reference_script()
    assert [str(path) for path, _ in script.outdated()] == [], "run: python scripts/cli_reference.py"


def test_every_command_and_flag_is_listed():
    script = reference_script()
    readme, reference = script.readme_section(), script.reference()
    for name, _, parser in script.commands(script.build_parser()):
        assert f"**`{name}`**" in readme and f"## `{name}`" in reference, name
        for flag, text in script.options(parser):
            assert f"`{flag.split(',')[0].split(' ')[0]}`" in readme and f"| `{flag}` |" in reference, (name, flag)
            assert text, (name, flag)
    assert "--top-k" not in readme and "--annotator-model" in readme  # old spellings are not listed


def test_a_stale_section_is_found(tmp_path, monkeypatch):
    script = reference_script()
    stale = tmp_path / "README.md"
    stale.write_text(script.README.read_text().replace("**`shiftlens reproduce`**", "**`shiftlens old`**"))
    monkeypatch.setattr(script, "README", stale)
    assert [path for path, _ in script.outdated()] == [stale]
    assert script.main(["--check"]) == 1 and script.main([]) == 0 and script.outdated() == []
