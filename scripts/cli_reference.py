"""Regenerate the command-line reference from the parser itself: docs/cli.md (every command's options with
their help and default) and README.md's list of each command's flags (between the ``cli-reference`` markers).

    python scripts/cli_reference.py          # rewrite both
    python scripts/cli_reference.py --check  # exit 1, naming the file, when either is out of date (a test runs this)
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from shiftlens.cli.flags import Deprecated
from shiftlens.cli.main import build_parser

ROOT = Path(__file__).resolve().parents[1]
README, REFERENCE = ROOT / "README.md", ROOT / "docs" / "cli.md"
BEGIN, END = "<!-- cli-reference: begin (scripts/cli_reference.py writes this) -->", "<!-- cli-reference: end -->"
SKIPPED = (Deprecated, argparse._HelpAction, argparse._VersionAction, argparse._SubParsersAction)


def commands(parser: argparse.ArgumentParser, name: tuple[str, ...] = ()) -> Iterator[tuple[str, str, Any]]:
    """(command, one-line help, parser) of every command that runs something, in the order of ``--help``."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            helps = {choice.dest: choice.help for choice in action._choices_actions}
            for sub, child in action.choices.items():
                if child._subparsers is None:
                    yield " ".join(("shiftlens", *name, sub)), helps[sub], child
                yield from commands(child, (*name, sub))


def options(parser: argparse.ArgumentParser) -> Iterator[tuple[str, str]]:
    """(invocation, help with its default) of every argument the help shows, positionals first."""
    formatter = parser._get_formatter()
    actions = [a for a in parser._actions if not isinstance(a, SKIPPED)]
    for action in sorted(actions, key=lambda a: bool(a.option_strings)):
        invocation = _invocation(formatter, action)
        required = " (required)" if action.required and action.option_strings else ""
        yield invocation, " ".join(formatter._expand_help(action).split()) + required


def _invocation(formatter: argparse.HelpFormatter, action: argparse.Action) -> str:
    """``--flag, --alias METAVAR`` (spelt here, not by argparse, whose layout changed in Python 3.13)."""
    if not action.option_strings:
        return action.metavar or action.dest
    names = ", ".join(action.option_strings)
    return names if action.nargs == 0 else f"{names} {formatter._format_args(action, action.dest.upper())}"


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def reference() -> str:
    """docs/cli.md: a table of options per command."""
    parts = [
        "# Command-line reference",
        "",
        "Generated from the parser by `python scripts/cli_reference.py` (a test checks it is current); "
        "`shiftlens COMMAND --help` says the same. Old spellings of renamed flags still work, with a warning "
        "naming the new one, and are not listed.",
    ]
    for name, help, parser in commands(build_parser()):
        parts += ["", f"## `{name}`", "", f"{help[0].upper()}{help[1:]}.", ""]
        parts += ["| argument | meaning |", "| --- | --- |"]
        parts += [f"| `{_cell(flag)}` | {_cell(text)} |" for flag, text in options(parser)]
    return "\n".join(parts) + "\n"


def readme_section() -> str:
    """README.md's part: each command's flags, one paragraph each, linking docs/cli.md."""
    lines = [BEGIN, "", "Every command and its flags ([docs/cli.md](docs/cli.md) has each one's help and default):", ""]
    for name, help, parser in commands(build_parser()):
        flags = [f"`{flag.split(',')[0].split(' ')[0]}`" for flag, _ in options(parser)]
        lines.append(f"- **`{name}`** ({help}): {', '.join(flags)}")
    return "\n".join([*lines, "", END])


def readme(text: str) -> str:
    """``text`` (README.md) with its generated section replaced."""
    if BEGIN not in text or END not in text:
        raise SystemExit(f"{README}: the markers {BEGIN!r} and {END!r} are missing")
    head, rest = text.split(BEGIN, 1)
    return head + readme_section() + rest.split(END, 1)[1]


def outdated() -> list[tuple[Path, str]]:
    """The files whose content differs from the generated one, with the content they should have."""
    wanted = [(REFERENCE, reference()), (README, readme(README.read_text(encoding="utf-8")))]
    return [(path, text) for path, text in wanted if not path.exists() or path.read_text(encoding="utf-8") != text]


def main(argv: list[str] | None = None) -> int:
    """Rewrite the out-of-date files, or with ``--check`` name them and exit 1."""
    check = "--check" in (argv if argv is not None else sys.argv[1:])
    stale = outdated()
    for path, text in stale:
        if check:
            print(f"{path} is out of date: run python scripts/cli_reference.py", file=sys.stderr)
        else:
            path.write_text(text, encoding="utf-8")
            print(f"wrote {path}")
    return 1 if check and stale else 0


if __name__ == "__main__":
    sys.exit(main())
