"""storage/ is a leaf of the import graph, and has no cycle inside it (calls <-> outbox had
one, hidden behind TYPE_CHECKING and a function-level import)."""

from __future__ import annotations

import ast
from pathlib import Path

STORAGE = Path(__file__).resolve().parent.parent / "storage"


def _imports(path: Path) -> set[str]:
    """Every module a file imports, at any depth (inside functions, under TYPE_CHECKING)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return found


def _graph() -> dict[str, set[str]]:
    modules = {f"storage.{p.stem}": p for p in STORAGE.glob("*.py") if p.stem != "__init__"}
    return {name: _imports(path) & modules.keys() for name, path in modules.items()}


def test_storage_modules_import_each_other_without_a_cycle() -> None:
    graph = _graph()
    assert "storage.outbox" in graph["storage.calls"]  # the graph is read at all
    done: set[str] = set()

    def visit(name: str, path: list[str]) -> None:
        assert name not in path, f"import cycle: {' -> '.join([*path, name])}"
        if name in done:
            return
        for dep in sorted(graph[name]):
            visit(dep, [*path, name])
        done.add(name)

    for name in sorted(graph):
        visit(name, [])


def test_storage_imports_neither_bot_nor_handlers() -> None:
    for path in STORAGE.glob("*.py"):
        bad = {m for m in _imports(path) if m.split(".")[0] in ("bot", "handlers", "tests")}
        assert not bad, f"{path.name} imports {bad}"
