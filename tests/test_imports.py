"""Every module of losspath imports, and no two modules import each other, even through a deferred import."""
import ast
import importlib
from pathlib import Path

import pytest

import losspath

SRC = Path(losspath.__file__).parent


def module_files() -> dict[str, Path]:
    """Dotted module name → file, for every .py under src/losspath (a package is named by its __init__)."""
    files = {}
    for path in sorted(SRC.rglob("*.py")):
        parts = path.relative_to(SRC.parent).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        files[".".join(parts)] = path
    return files


def imported_modules(name: str, path: Path, known: set[str]) -> set[str]:
    """The losspath modules that `name` imports anywhere in its file: at the top, in functions, under `if`."""
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            for alias in node.names:  # `from . import x` names a module; `from .m import f` names m
                found.add(f"{target}.{alias.name}" if f"{target}.{alias.name}" in known else target)
    return {m for m in found if m in known and m != name}


def import_graph() -> dict[str, set[str]]:
    files = module_files()
    return {name: imported_modules(name, path, set(files)) for name, path in files.items()}


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle of `graph` as [a, b, …, a], or None when the graph is acyclic (depth-first search)."""
    state = {}  # 1 = on the current path, 2 = finished

    def visit(node, path):
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                return path[path.index(nxt):] + [nxt]
            if nxt not in state:
                cycle = visit(nxt, path)
                if cycle:
                    return cycle
        path.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state:
            cycle = visit(node, [])
            if cycle:
                return cycle
    return None


def test_find_cycle_on_plain_graphs():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": set()}) is None
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b", "c"}, "b": {"c"}, "c": set()}) is None


def test_graph_sees_deferred_and_relative_imports():
    graph = import_graph()
    assert "losspath.lines.engine" in graph["losspath.lines"]  # `from .engine import …` in a package __init__
    assert "losspath.errors" in graph["losspath.store"]  # `from .errors import …`
    assert "losspath.checkpoints" in graph["losspath.lines.states"]  # imported inside resolve_state


def test_no_import_circle():
    cycle = find_cycle(import_graph())
    assert cycle is None, "import circle: " + " → ".join(cycle)


@pytest.mark.parametrize("name", sorted(m for m in module_files() if not m.endswith("__main__")))
def test_every_module_imports(name):  # __main__ runs the command line when imported
    importlib.import_module(name)
