"""The instructor's sheet, ``manual.csv``: the points a person gives the written discussions.

One row per student and discussion deliverable whose grader check is met (written, and its
automatic part done): ``student, deliverable, max, points, comment``, points empty until a
person fills them in. A discussion not met scores 0 by the rubric and gets no row (a row the
instructor adds for it anyway overrides the 0). Grading rewrites the sheet for the current
class but never loses what was entered: points and comments of existing rows are kept.
"""
from __future__ import annotations

import csv
import dataclasses
import io
from pathlib import Path

from grader import rubric
from grader.schema import Summary
from labutils import atomic, course

SHEET = "manual.csv"
COLUMNS = ("student", "deliverable", "max", "points", "comment")


@dataclasses.dataclass(frozen=True)
class Entry:
    """What a person wrote for one student's discussion: ``points`` (None: not yet graded) and a comment."""

    points: float | None
    comment: str


def _number(value: float) -> str:
    return f"{value:g}"


def needed(summary: Summary) -> list[tuple[str, int]]:
    """``(student, deliverable id)`` of every discussion a person has to grade, in class order."""
    manual = {d.id for d in course.DELIVERABLES if rubric.manual(d)}
    return [(run.name, a.id) for run in summary.runs for a in run.deliverables
            if a.id in manual and a.status == "met"]


def read_rows(path: Path) -> list[dict[str, str]]:
    """The sheet's rows as written (empty when there is none); ValueError when its header is not ``COLUMNS``."""
    if not path.exists():
        return []
    reader = csv.DictReader(io.StringIO(path.read_text(encoding="utf-8-sig")))
    if tuple(reader.fieldnames or ()) != COLUMNS:
        raise ValueError(f"{path}: row 1: the header must be {','.join(COLUMNS)}, not {','.join(reader.fieldnames or [])}")
    return [{key: (row.get(key) or "").strip() for key in COLUMNS} for row in reader]


def write(out: Path, summary: Summary) -> Path:
    """Write ``out/manual.csv`` for ``summary``'s class, keeping every row already filled in."""
    path = out / SHEET
    try:
        kept = [row for row in read_rows(path) if row["points"] or row["comment"]]
    except ValueError:
        kept = []  # not the grader's sheet: replaced (never happens to one it wrote)
    entered = {(row["student"], row["deliverable"]): row for row in kept}
    rows = []
    for student, deliverable in needed(summary):
        row = entered.pop((student, str(deliverable)), None)
        rows.append(row or {"student": student, "deliverable": str(deliverable),
                            "max": _number(rubric.maximum(deliverable)), "points": "", "comment": ""})
    rows += list(entered.values())  # filled in earlier for a discussion the grader no longer lists: kept
    text = io.StringIO()
    writer = csv.DictWriter(text, fieldnames=COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    atomic.write_text(path, text.getvalue())
    return path


def _entry(number: int, row: dict[str, str], students: set[str]) -> tuple[tuple[str, int] | None, Entry | None, str]:
    """One row checked: ``(key, entry, "")`` or ``(None, None, problem naming row and column)``."""
    where = f"{SHEET} row {number}"
    manual = {d.id for d in course.DELIVERABLES if rubric.manual(d)}
    if row["student"] not in students:
        return None, None, f"{where}, column student: unknown student {row['student']!r}"
    if not row["deliverable"].isdigit() or int(row["deliverable"]) not in manual:
        return None, None, (f"{where}, column deliverable: {row['deliverable']!r} is not a discussion deliverable "
                            f"({', '.join(map(str, sorted(manual)))})")
    deliverable = int(row["deliverable"])
    if not row["points"]:
        return (row["student"], deliverable), Entry(None, row["comment"]), ""
    try:
        points = float(row["points"])
    except ValueError:
        return None, None, f"{where}, column points: {row['points']!r} is not a number"
    top = rubric.maximum(deliverable)
    if not 0 <= points <= top:
        return None, None, (f"{where}, column points: {row['points']} is outside 0..{_number(top)}, the maximum "
                            f"of deliverable {deliverable}")
    return (row["student"], deliverable), Entry(points, row["comment"]), ""


def read(out: Path, summary: Summary) -> tuple[dict[tuple[str, int], Entry], list[str]]:
    """The sheet's entries by ``(student, deliverable)``, and every problem found (each names its row and column)."""
    try:
        rows = read_rows(out / SHEET)
    except ValueError as err:
        return {}, [str(err)]
    students = {run.name for run in summary.runs}
    entries, problems = {}, []
    for number, row in enumerate(rows, start=2):  # row 1 is the header, as a spreadsheet counts
        key, entry, problem = _entry(number, row, students)
        if problem:
            problems.append(problem)
        elif key in entries:
            problems.append(f"{SHEET} row {number}, column deliverable: a second row for {key[0]}, deliverable {key[1]}")
        else:
            entries[key] = entry
    return entries, problems
