"""Each exercise scored on its own: its self-check's outcome in the graded run, and whether it is the student's own.

An exercise is a function the student completes (``course.Notebook.exercises``), introduced by its
task line (``# Exercise <name>: ...``, see ``grader.release``). Its **solution** is what follows the
task line inside the function: the ``### BEGIN SOLUTION`` region in the course's notebooks, the
student's lines in place of the stub in a released one. Its **self-check** is the first later code
cell that both names the exercise and calls a ``check_*`` function (``labutils.checks``); its outcome
is read from the executed notebook (the grader runs with errors allowed, so one failed check does
not stop the cells after it): an error output there is the failure and its message the evidence.

**Own work** is decided by reading the code with ``ast``, not by matching text: every name the
exercise's function uses is resolved through the notebook's imports (``from labutils import
tfrecords as t`` makes ``t.serialize`` ``labutils.tfrecords.serialize``), following the notebook's
own helper functions it calls; using one of the exercise's course references
(``grader.rubric.EXERCISES``) forfeits its points.
"""
from __future__ import annotations

import ast
import re
from pathlib import Path

import nbformat

from grader import collect, release, rubric
from grader.schema import ExerciseScore, NotebookResult
from labutils import course

SOLUTION_CAP = 20_000  # characters of a solution kept in the summary
MESSAGE_CAP = 400  # characters of a self-check's message kept as evidence
MAGIC = re.compile(r"^\s*[%!].*$", re.MULTILINE)


def read(path: Path | None) -> nbformat.NotebookNode | None:
    """A notebook, bounded (None when missing or unreadable)."""
    if path is None:
        return None
    try:
        text = collect.read_bounded(path, collect.PARSE_CAP).decode("utf-8", errors="replace")
        return nbformat.reads(text, as_version=4)
    except (collect.Unreadable, ValueError, KeyError, AttributeError):
        return None


def parse(source: str) -> ast.Module | None:
    """A code cell's syntax tree (IPython magics blanked); None when it is not Python."""
    try:
        return ast.parse(MAGIC.sub("", source))
    except (SyntaxError, ValueError):
        return None


def _code_cells(nb) -> list[tuple[int, dict]]:
    """``(index, cell)`` of the notebook's code cells, papermill's inserted ones left out."""
    return [(i, c) for i, c in enumerate(nb.cells) if c.get("cell_type") == "code"
            and not collect.INSERTED_TAGS & set(c.get("metadata", {}).get("tags", []))]


def _aliases(trees: list[ast.AST]) -> dict[str, str]:
    """Local name -> dotted module path of every import in ``trees`` (``tf`` -> ``tensorflow``)."""
    names = {}
    for tree in trees:
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                for alias in node.names:
                    names[alias.asname or alias.name.split(".")[0]] = alias.name if alias.asname else \
                        alias.name.split(".")[0]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names.update({alias.asname or alias.name: f"{node.module}.{alias.name}" for alias in node.names})
    return names


def _dotted(node: ast.AST, names: dict[str, str]) -> str | None:
    """``a.b.c`` resolved through the imports, for a Name or a chain of Attributes on one."""
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if not isinstance(node, ast.Name):
        return None
    return ".".join([names.get(node.id, node.id), *reversed(parts)])


def _uses(tree: ast.AST, names: dict[str, str]) -> set[str]:
    """Every dotted name ``tree`` uses (each prefix of an attribute chain included)."""
    local = {**names, **_aliases([tree])}
    return {name for node in ast.walk(tree) if isinstance(node, (ast.Name, ast.Attribute))
            for name in [_dotted(node, local)] if name}


def references(name: str, nb, forbidden: tuple[str, ...]) -> list[str]:
    """The course references in ``forbidden`` that exercise ``name``'s function uses, directly or through
    the notebook's own functions it calls (empty when it uses none, or the notebook defines no ``name``)."""
    trees = [t for _, c in _code_cells(nb) for t in [parse(c.get("source", ""))] if t is not None]
    names = _aliases(trees)
    defs = {node.name: node for tree in trees for node in tree.body
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))}
    found, seen, todo = set(), set(), [name] if name in defs else []
    while todo:
        current = todo.pop()
        if current in seen:
            continue
        seen.add(current)
        used = _uses(defs[current], names)
        found |= {u for u in used if any(u == ref or u.startswith(ref + ".") for ref in forbidden)}
        todo += [u for u in used if u in defs and u not in seen]
    return sorted(found)


def _task_cell(nb, name: str) -> int | None:
    """Index of the code cell holding exercise ``name``'s task line."""
    for index, cell in _code_cells(nb):
        for line in cell.get("source", "").split("\n"):
            task = release.TASK.match(line)
            if task and task.group("name") == name:
                return index
    return None


def solution(nb, name: str) -> str:
    """What the student wrote for ``name``: the lines after its task comment to the end of its function
    (solution markers left out), dedented; empty when the notebook has no such task."""
    index = _task_cell(nb, name)
    if index is None:
        return ""
    lines = nb.cells[index].source.split("\n")
    start = next(i for i, line in enumerate(lines) if (m := release.TASK.match(line)) and m.group("name") == name)
    while start + 1 < len(lines) and lines[start + 1].lstrip().startswith("#"):
        start += 1  # the task's continuation lines, and the stub's "# YOUR CODE HERE": the course's text
    tree = parse(nb.cells[index].source)
    end = len(lines)
    if tree is not None:
        owner = [n for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))
                 and n.lineno <= start + 1 <= n.end_lineno]
        end = min((n.end_lineno for n in owner), default=end)
    kept = [line for line in lines[start + 1:end] if line.strip() not in (release.BEGIN, release.END)]
    indent = min((len(line) - len(line.lstrip()) for line in kept if line.strip()), default=0)
    return "\n".join(line[indent:] for line in kept).strip("\n")[:SOLUTION_CAP]


def _is_check(tree: ast.AST, name: str) -> bool:
    """Whether a cell names exercise ``name`` and calls a ``check_*`` function."""
    named = any(isinstance(n, ast.Name) and n.id == name for n in ast.walk(tree))
    checks = any(isinstance(n, ast.Call) and ((isinstance(n.func, ast.Attribute) and n.func.attr.startswith("check_"))
                                              or (isinstance(n.func, ast.Name) and n.func.id.startswith("check_")))
                 for n in ast.walk(tree))
    return named and checks


def _error(cell) -> tuple[str, str] | None:
    """``(name, message)`` of the first error output of an executed cell."""
    for out in cell.get("outputs", []):
        if out.get("output_type") == "error":
            return collect.clean(out.get("ename")) or "Error", collect.clean(out.get("evalue")) or ""
    return None


def outcome(executed, name: str) -> tuple[str, str]:
    """``(status, evidence)`` of exercise ``name``'s self-check in an executed notebook."""
    index = _task_cell(executed, name)
    if index is None:
        return "missing", f"no '# Exercise {name}:' task line in the notebook (the exercise was removed)"
    own_error = _error(executed.cells[index])
    check = next((c for i, c in _code_cells(executed) if i > index
                  for tree in [parse(c.get("source", ""))] if tree is not None and _is_check(tree, name)), None)
    if check is None:
        return "missing", f"no self-check of {name} after it (the check cell was removed or changed)"
    error = own_error or _error(check)
    if error:
        status = "not implemented" if error[0] == "NotImplementedError" else "failed"
        return status, f"{error[0]}: {error[1]}"[:MESSAGE_CAP]
    if check.get("execution_count") is None:
        return "not run", "its self-check did not run (the notebook stopped before it)"
    printed = "".join(o.get("text", "") for o in check.get("outputs", []) if o.get("output_type") == "stream")
    lines = [ln.strip() for ln in collect.clean(printed).splitlines() if ln.strip()]
    line = next((ln for ln in lines if f"{name}:" in ln), lines[0] if lines else "")  # the check's own line
    return "passed", (line or "self-check passed")[:MESSAGE_CAP]


def _scored(name: str, notebook: course.Notebook, status: str, evidence: str, source) -> ExerciseScore:
    """One exercise's row: its points when the check passed and the solution calls no course reference."""
    spec = rubric.EXERCISES[name]
    used = references(name, source, spec.references) if source is not None else []
    points = spec.points if status == "passed" and not used else 0
    if status == "passed" and used:
        evidence = (f"self-check passed, but the solution calls the course's reference {', '.join(used)}: "
                    f"not the student's own work")
    return ExerciseScore(name, notebook.name, status, evidence, points, spec.points, used,
                         solution(source, name) if source is not None else "")


def score(notebook: course.Notebook, result: NotebookResult, source: Path | None,
          executed: Path | None) -> list[ExerciseScore]:
    """Every exercise of ``notebook``, from its source (the private copy) and executed notebook."""
    theirs, ran = read(source), read(executed) if result.status not in ("skipped", "missing") else None
    rows = []
    for name in notebook.exercises:
        if ran is not None:
            status, evidence = outcome(ran, name)
        elif result.status == "skipped":
            status, evidence = "not run", f"{notebook.name} skipped ({result.reason})"
        else:
            status, evidence = "not run", f"{notebook.name} {result.status}: no executed notebook to read"
        rows.append(_scored(name, notebook, status, evidence, theirs))
    return rows
