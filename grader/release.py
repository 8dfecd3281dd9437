"""The student version of the lab: ``python -m grader release [--out DIR]`` (default ``release/``).

The course notebooks mark each exercise the way nbgrader does: in a code cell, the
lines between ``### BEGIN SOLUTION`` and ``### END SOLUTION`` are the solution, and
the comment just above ``### BEGIN SOLUTION`` names the task (one line, or one and the
comment lines that continue it)::

    # Exercise make_example: return a tf.train.Example with the four features.
    ### BEGIN SOLUTION
    ...
    ### END SOLUTION

In the student version each region becomes ``# YOUR CODE HERE`` and
``raise NotImplementedError("make_example: return a tf.train.Example ...")`` at
the region's indentation; every other cell is unchanged and no cell keeps an
output. The release is a student's copy of the repository: the stripped
notebooks in ``notebooks/`` beside everything else a student needs (``labutils``,
``img_in/``, the empty ``records/`` and ``img_out/``, the requirements) and a
README and Makefile of its own (``grader/student/``) that name only what it holds.
The course's tools stay behind: the grader, tests, benchmarks, deployment files.
The grader grades what students hand back like any other submission. The release also
records the course's discussion templates (``grader/templates.json``, which the grader
compares discussion cells with) from the notebooks it released.

nbgrader itself (``nbgrader generate_assignment``) strips the same markers, but it
brings a database, a web server extension and its own course layout; for one
small rule this module is enough, and the markers stay nbgrader's, so a course
that uses nbgrader can run it on these notebooks unchanged.
"""
from __future__ import annotations

import json
import re
import shutil
import sys
from pathlib import Path

import nbformat

from grader import deliverables, rubric
from labutils import config, course

BEGIN, END = "### BEGIN SOLUTION", "### END SOLUTION"
TASK = re.compile(r"^(?P<indent>\s*)# Exercise (?P<name>[A-Za-z_][\w.]*): (?P<what>.+?)\s*$")
# What a student's copy holds besides the stripped notebooks: course files as they are, and the
# student's own README and Makefile (which name only what the copy holds).
SHIPPED = ("labutils", "img_in", "requirements.txt", "pyproject.toml")
STUDENT_FILES = Path(__file__).resolve().parent / "student"
EMPTY = ("records", "img_out")


class MarkerError(ValueError):
    """Solution markers that do not pair up, or an exercise without its task line."""


def exercises(source: str, where: str = "cell") -> list[tuple[str, str]]:
    """``(name, what to write)`` of every exercise region in one cell's source."""
    return [(name, what) for name, what, _ in _regions(source, where)]


def task_above(lines: list[str], begin: int) -> tuple[str, str] | None:
    """``(name, what)`` of the task comment that ends just above line ``begin``: a line
    ``# Exercise NAME: what`` and any comment lines that continue it (lines stay at most 100
    characters, so a task may take two); None when there is none."""
    i, tail = begin - 1, []
    while i >= 0 and lines[i].lstrip().startswith("#") and not TASK.match(lines[i]):
        tail.insert(0, lines[i].lstrip().lstrip("#").strip())
        i -= 1
    task = TASK.match(lines[i]) if i >= 0 else None
    if task is None:
        return None
    return task.group("name"), " ".join([task.group("what"), *tail]).strip()


def _regions(source: str, where: str) -> list[tuple[str, str, tuple[int, int, str]]]:
    lines = source.split("\n")
    found, start = [], None
    for i, line in enumerate(lines):
        marker = line.strip()
        if marker.startswith(BEGIN):
            if start is not None:
                raise MarkerError(f"{where}: line {i + 1}: {BEGIN} inside another solution region "
                                  f"(opened on line {start + 1}); close it with {END} first.")
            task = task_above(lines, i)
            if task is None:
                raise MarkerError(f"{where}: line {i + 1}: {BEGIN} needs the task in the comment above, "
                                  f"e.g. '# Exercise make_example: build the tf.train.Example of one image.'")
            start = i
            (name, what), indent = task, line[: len(line) - len(line.lstrip())]
        elif marker.startswith(END):
            if start is None:
                raise MarkerError(f"{where}: line {i + 1}: {END} without a {BEGIN} before it.")
            found.append((name, what, (start, i, indent)))
            start = None
    if start is not None:
        raise MarkerError(f"{where}: line {start + 1}: {BEGIN} is never closed by {END}.")
    return found


def strip_source(source: str, where: str = "cell") -> str:
    """``source`` with every solution region replaced by the stub that names its task."""
    lines = source.split("\n")
    for name, what, (start, end, indent) in reversed(_regions(source, where)):
        message = f"{name}: {what}"
        lines[start:end + 1] = [f"{indent}# YOUR CODE HERE", f"{indent}raise NotImplementedError({json.dumps(message)})"]
    return "\n".join(lines)


def student_notebook(nb: nbformat.NotebookNode, where: str) -> tuple[nbformat.NotebookNode, list[str]]:
    """A copy of ``nb`` with its solutions stripped and no outputs; and the names of its exercises."""
    nb = nbformat.from_dict(nb)
    names = []
    for number, cell in enumerate(nb.cells, start=1):
        if cell.cell_type != "code":
            if BEGIN in cell.source:
                raise MarkerError(f"{where}, cell {number}: solution markers belong in code cells.")
            continue
        names += [name for name, _ in exercises(cell.source, f"{where}, cell {number}")]
        cell.source = strip_source(cell.source, f"{where}, cell {number}")
        cell.outputs, cell.execution_count = [], None
        cell.metadata.pop("execution", None)
        cell.metadata.pop("papermill", None)
    return nb, names


def release(out: Path, root: Path = config.ROOT) -> dict[str, list[str]]:
    """Write the student repository to ``out`` (replaced if it exists); returns notebook -> its exercises."""
    out = Path(out).resolve()
    if out == Path(root).resolve() or Path(root).resolve().is_relative_to(out):
        raise ValueError(f"--out {out} would overwrite the course itself: choose another folder")
    staging = out.with_name(f".{out.name}.partial")
    shutil.rmtree(staging, ignore_errors=True)
    (staging / "notebooks").mkdir(parents=True)
    made = {}
    for name in (nb.name for nb in course.NOTEBOOKS):
        source = Path(root) / "notebooks" / name
        nb, made[name] = student_notebook(nbformat.read(source, as_version=4), f"notebooks/{name}")
        if not made[name]:
            raise MarkerError(f"notebooks/{name} has no exercise ({BEGIN} ... {END}): every notebook needs one.")
        nbformat.write(nb, staging / "notebooks" / name)
    for entry in SHIPPED:
        path = Path(root) / entry
        if path.is_dir():
            shutil.copytree(path, staging / entry, ignore=shutil.ignore_patterns(
                "__pycache__", "*.pyc", "*.egg-info", "_cam*.jpg"))
        elif path.is_file():
            shutil.copy2(path, staging / entry)
    for entry in STUDENT_FILES.iterdir():
        shutil.copy2(entry, staging / entry.name)
    for entry in EMPTY:
        (staging / entry).mkdir()
        (staging / entry / ".gitkeep").touch()
    shutil.rmtree(out, ignore_errors=True)
    staging.rename(out)
    return made


def main(args, error) -> int:
    """``python -m grader release``: write the student version to ``args.out`` (default ``release/``)."""
    out = args.out or config.ROOT / "release"
    try:
        rubric.check()  # the points must cover what is released
        made = release(out)
    except (MarkerError, ValueError, OSError) as err:
        print(f"release: {err}", file=sys.stderr)
        return 1
    for name, tasks in made.items():
        print(f"notebooks/{name}: {len(tasks)} exercise(s): {', '.join(tasks)}")
    recorded = deliverables.write_templates(config.ROOT / config.NOTEBOOKS_DIR.relative_to(config.ROOT))
    print(f"discussion templates of {', '.join(recorded)}: {deliverables.TEMPLATES}")
    print(f"student repository: {out}")
    return 0
