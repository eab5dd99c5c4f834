"""The layering of docs/architecture.md, checked on the source: which package may import which."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "shiftlens"

# Rank of every top-level package/module of shiftlens: a module may import only ranks <= its own, and the
# methods (rank 1) never import one another. Keep in step with docs/architecture.md ("Layers").
INFRASTRUCTURE = 0
METHOD = 1
LAYERS: dict[str, int] = {
    **dict.fromkeys(
        (
            "errors config evidence progress safe_pickle spans prompting storage atomic runs distributed options stats "
            "nulls tables plots vocabulary wordnet architecture density examples models weights lazy"
        ).split(),
        INFRASTRUCTURE,
    ),
    **dict.fromkeys(("attribution", "heads", "ffn", "diff"), METHOD),
    **dict.fromkeys(("analysis", "paper_data", "organism", "validation"), 2),
    **dict.fromkeys(("report",), 3),
    **dict.fromkeys(("compare",), 4),
    **dict.fromkeys(("cli", "__init__", "__main__"), 5),
}


def imported_packages(path: Path) -> set[str]:
    """The top-level shiftlens packages a source file imports (``from shiftlens.x import`` / ``import shiftlens.x``)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        names = []
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module]
        elif isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        found.update(n.split(".")[1] for n in names if n.startswith("shiftlens.") and n.count(".") >= 1)
    return found


def violations(graph: dict[str, set[str]], layers: dict[str, int]) -> list[str]:
    """Every edge that breaks the rules, as "a -> b (why)"; packages missing from ``layers`` are reported too."""
    bad = []
    for source, targets in sorted(graph.items()):
        if source not in layers:
            bad.append(f"{source}: not in LAYERS (add it to the table and to docs/architecture.md)")
            continue
        for target in sorted(targets - {source}):
            if target not in layers:
                bad.append(f"{source} -> {target}: {target} not in LAYERS")
            elif layers[target] > layers[source]:
                bad.append(f"{source} -> {target}: imports a higher layer")
            elif layers[source] == layers[target] == METHOD:
                bad.append(f"{source} -> {target}: one method imports another")
    return bad


def source_graph() -> dict[str, set[str]]:
    """Top-level package -> the top-level packages its files import."""
    graph: dict[str, set[str]] = {}
    for path in SRC.rglob("*.py"):
        top = path.relative_to(SRC).parts[0].removesuffix(".py")
        graph.setdefault(top, set()).update(imported_packages(path))
    return graph


def test_the_source_keeps_the_layers() -> None:
    assert violations(source_graph(), LAYERS) == []


@pytest.mark.parametrize(
    ("graph", "expected"),
    [
        ({"storage": {"organism"}}, ["storage -> organism: imports a higher layer"]),
        ({"heads": {"ffn"}}, ["heads -> ffn: one method imports another"]),
        ({"stats": {"attribution"}}, ["stats -> attribution: imports a higher layer"]),
        ({"newthing": {"errors"}}, ["newthing: not in LAYERS (add it to the table and to docs/architecture.md)"]),
        ({"cli": {"compare", "heads", "errors"}, "heads": {"errors", "heads"}}, []),
    ],
)
def test_the_rule_check_catches_each_kind_of_break(graph: dict[str, set[str]], expected: list[str]) -> None:
    assert violations(graph, LAYERS) == expected


def test_imports_are_read_from_source(tmp_path: Path) -> None:
    module = tmp_path / "m.py"
    module.write_text("import shiftlens.heads.core\nfrom shiftlens.ffn import x\nfrom . import y\nimport numpy\n")
    assert imported_packages(module) == {"heads", "ffn"}
