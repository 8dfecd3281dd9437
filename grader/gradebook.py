"""``gradebook.csv``: one row per student, a column per exercise and per deliverable, the total.

The grader's own points (``grader.rubric``: exercises, deliverables it judges) and the points a
person gave the discussions (``manual.csv``, ``grader.sheet``). ``needs_manual`` is true while
a discussion still has no points (a student whose grading did not finish too). With a roster
(``student,lms_id`` rows: the folder name and the learning platform's id), an ``lms_id``
column follows the student, for the upload.
"""
from __future__ import annotations

import csv
import io
from pathlib import Path

from grader import rubric, sheet
from grader.schema import Run, Summary
from labutils import atomic, course

GRADEBOOK = "gradebook.csv"


def columns(roster: bool) -> list[str]:
    """The gradebook's header."""
    points = rubric.exercise_names() + [rubric.column(d.id) for d in course.DELIVERABLES]
    return ["student", *(["lms_id"] if roster else []), *points, "total", "maximum", "needs_manual"]


def points(run: Run, entries: dict[tuple[str, int], sheet.Entry]) -> dict[str, float | None]:
    """Column -> the student's points (None: not known yet: a discussion to grade, or no result)."""
    found: dict[str, float | None] = {name: None for name in rubric.exercise_names()}
    found.update({e.name: e.points for e in run.exercises})
    for d in course.DELIVERABLES:
        assessed = next((a for a in run.deliverables if a.id == d.id), None)
        entry = entries.get((run.name, d.id))
        given = entry.points if entry is not None and entry.points is not None else None
        found[rubric.column(d.id)] = given if given is not None else (assessed.points if assessed else None)
    return found


def _number(value: float | None) -> str:
    return "" if value is None else f"{value:g}"


def row(run: Run, entries: dict[tuple[str, int], sheet.Entry]) -> dict[str, str]:
    """One student's gradebook row."""
    got = points(run, entries)
    total = sum(v for v in got.values() if v is not None)
    maximum = sum(rubric.maximum(name) for name in got)
    return {"student": run.name, **{k: _number(v) for k, v in got.items()}, "total": _number(total),
            "maximum": _number(maximum), "needs_manual": str(any(v is None for v in got.values())).lower()}


def read_roster(path: Path) -> dict[str, str]:
    """Folder name -> LMS id, from a two-column CSV (a header ``student,...`` is skipped)."""
    found = {}
    for number, fields in enumerate(csv.reader(io.StringIO(path.read_text(encoding="utf-8-sig"))), start=1):
        if not fields or (number == 1 and fields[0].strip().lower() == "student"):
            continue
        if len(fields) < 2:
            raise ValueError(f"{path} row {number}: two columns expected (student folder, LMS id)")
        found[fields[0].strip()] = fields[1].strip()
    return found


def write(out: Path, summary: Summary, entries: dict[tuple[str, int], sheet.Entry],
          roster: dict[str, str] | None = None) -> Path:
    """Write ``out/gradebook.csv``; returns its path."""
    text = io.StringIO()
    writer = csv.DictWriter(text, fieldnames=columns(roster is not None), lineterminator="\n")
    writer.writeheader()
    for run in summary.runs:
        record = row(run, entries)
        if roster is not None:
            record["lms_id"] = roster.get(run.name, "")
        writer.writerow(record)
    atomic.write_text(out / GRADEBOOK, text.getvalue())
    return out / GRADEBOOK
