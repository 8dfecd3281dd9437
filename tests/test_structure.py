"""The code's shape: no import loops between modules, no function longer than a screen."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PACKAGES = ("labutils", "grader")
MAX_FUNCTION_LINES = 60


def modules() -> dict[str, Path]:
    """Dotted name -> file of every module of the packages (``pkg/__init__.py`` is ``pkg``)."""
    found = {}
    for package in PACKAGES:
        for path in sorted((REPO / package).rglob("*.py")):
            parts = path.relative_to(REPO).with_suffix("").parts
            found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return found


def imports(name: str, path: Path, known: set[str]) -> set[str]:
    """The package modules ``name`` imports (at any depth: a function-level import is still a dependency)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found |= {f"{node.module}.{alias.name}" for alias in node.names} | {node.module}
    return {target for target in found if target in known and target != name and not name.startswith(target + ".")}


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Every import loop, as the modules on it (depth-first search, one loop reported per back edge)."""
    loops, state, stack = [], {}, []

    def visit(node: str) -> None:
        state[node], stack[len(stack):] = "open", [node]
        for target in sorted(graph[node]):
            if state.get(target) == "open":
                loops.append(stack[stack.index(target):] + [target])
            elif target not in state:
                visit(target)
        stack.pop()
        state[node] = "done"

    for node in sorted(graph):
        if node not in state:
            visit(node)
    return loops


def test_no_import_loops():
    known = modules()
    graph = {name: imports(name, path, set(known)) for name, path in known.items()}
    assert graph["grader.run"] and "grader.runner" in graph["grader.run"]  # the graph is really read
    assert not cycles(graph), "import loops: " + "; ".join(" -> ".join(loop) for loop in cycles(graph))


def test_cycles_finds_a_loop():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == [["a", "b", "c", "a"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


@pytest.mark.parametrize("package", PACKAGES)
def test_no_function_is_longer_than_a_screen(package):
    long = []
    for path in sorted((REPO / package).rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                lines = node.end_lineno - node.lineno + 1
                if lines > MAX_FUNCTION_LINES:
                    long.append(f"{path.relative_to(REPO)}:{node.lineno} {node.name} ({lines} lines)")
    assert not long, f"functions over {MAX_FUNCTION_LINES} lines: " + "; ".join(long)
