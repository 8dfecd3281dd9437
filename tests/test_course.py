"""The course's facts live in labutils.course only: no other module or notebook types them."""
from __future__ import annotations

import ast
import json
import re
from pathlib import Path

import pytest

from labutils import course

REPO = Path(__file__).resolve().parents[1]
# Everything that runs: the packages, the benchmarks and the notebooks' code (the tests may name
# what they check; course.py is the one place that defines them).
SOURCES = sorted({*REPO.glob("labutils/**/*.py"), *REPO.glob("grader/**/*.py"), *REPO.glob("benchmarks/*.py"),
                  *REPO.glob("notebooks/*.ipynb")} - {REPO / "labutils" / "course.py"})
STEMS = tuple(nb.stem for nb in course.NOTEBOOKS)
MODELS = {model for nb in course.NOTEBOOKS for model in nb.models}


def code_of(path: Path) -> list[tuple[str, str]]:
    """``(where, source)`` of each piece of Python in ``path``: the module, or each code cell of a notebook."""
    if path.suffix == ".py":
        return [(str(path.relative_to(REPO)), path.read_text())]
    cells = json.loads(path.read_text())["cells"]
    magic = re.compile(r"^\s*[%!].*$", re.MULTILINE)  # IPython magics and shell lines are not Python
    return [(f"{path.relative_to(REPO)} cell {i}", magic.sub("", "".join(cell["source"])))
            for i, cell in enumerate(cells, 1) if cell["cell_type"] == "code"]


def typed_strings(source: str) -> list[str]:
    """The string constants a piece of code types, docstrings left out (documentation may name things)."""
    tree = ast.parse(source)
    docstrings = {id(node.body[0].value) for node in ast.walk(tree)
                  if isinstance(node, (ast.Module, ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))
                  and node.body and isinstance(node.body[0], ast.Expr)
                  and isinstance(node.body[0].value, ast.Constant)}
    return [node.value for node in ast.walk(tree)
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings]


@pytest.mark.parametrize("path", SOURCES, ids=[str(p.relative_to(REPO)) for p in SOURCES])
def test_no_module_types_a_notebook_or_model_name(path):
    """Renaming a notebook or a model is a change to labutils/course.py only.

    A notebook may type ``conv_base``: naming the backbone so is the exercise the deliverable asks for.
    """
    names = MODELS if path.suffix == ".ipynb" else {*MODELS, course.CONV_BASE}
    found = []
    for where, source in code_of(path):
        for text in typed_strings(source):
            if text in names or any(stem in text for stem in STEMS):
                found.append(f"{where}: {text!r}")
    assert not found, "use labutils.course instead of typing these names: " + "; ".join(found)


def test_the_registry_is_consistent():
    numbers = [nb.number for nb in course.NOTEBOOKS]
    assert numbers == sorted(set(numbers)) and all(nb.stem.startswith(nb.number + "_") for nb in course.NOTEBOOKS)
    assert all(need in numbers[:numbers.index(nb.number)] for nb in course.NOTEBOOKS for need in nb.needs)
    assert all((REPO / "notebooks" / nb.name).is_file() for nb in course.NOTEBOOKS)
    assert [d.id for d in course.DELIVERABLES] == list(range(1, len(course.DELIVERABLES) + 1))
    assert course.notebook("02") is course.notebook("02_lab4_retrain.ipynb") is course.NOTEBOOKS[1]
    with pytest.raises(KeyError, match="not a course notebook"):
        course.notebook("05")
