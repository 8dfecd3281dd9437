"""Who is graded: the student folders of a submissions folder, and where each one's outputs go.

``run``, ``k8s`` and ``merge`` all read the class from here, so a local run, the
Kubernetes Job and the merged report list the same students in the same order.
"""
from __future__ import annotations

import hashlib
import re
from pathlib import Path

# Written into every output folder: a later --submissions run over the same parent never grades it.
MARKER = ".lab5-grader-output"
SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,80}$")


def folder_name(student: str) -> str:
    """The output folder of ``student``: the name itself when plain, else a plain form plus a hash (unique)."""
    if SAFE_NAME.match(student):
        return student
    plain = re.sub(r"[^A-Za-z0-9._-]+", "_", student).strip("._-")[:40] or "student"
    return f"{plain}-{hashlib.sha256(student.encode(errors='surrogateescape')).hexdigest()[:8]}"


def output_folder(student: str) -> str:
    """Where one student's outputs go, relative to the class's output folder."""
    return f"students/{folder_name(student)}"


def submissions(folder: Path, out: Path | None) -> tuple[dict[str, Path], list[dict]]:
    """Student name -> their folder, and the entries not graded with why (symlinks, grader outputs).

    Every real sub-folder of ``folder`` is a student, whatever its name (``summary.json`` too);
    hidden ones are not.
    """
    students, not_graded = {}, []
    for path in sorted(folder.iterdir()):
        if path.name.startswith("."):
            continue
        if path.is_symlink():
            not_graded.append({"name": path.name, "reason": "a symlink, not followed (submit a folder)"})
        elif path.is_dir() and (path.resolve() == out or (path / MARKER).exists()):
            not_graded.append({"name": path.name, "reason": f"a grader output folder (holds {MARKER})"})
        elif path.is_dir():
            students[path.name] = path.resolve()
    return students, not_graded


def mark_output(out: Path, command: str) -> None:
    """Create ``out`` and mark it as the grader's, so that no later run grades it as a submission."""
    out.mkdir(parents=True, exist_ok=True)
    (out / MARKER).write_text(f"Written by python -m grader {command}: never graded as a submission.\n")
