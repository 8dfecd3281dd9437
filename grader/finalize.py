"""The class's grades: what grading writes beside its report, and ``python -m grader finalize OUT``.

Grading a class (``run``, or ``merge`` of the pods' results) ends with :func:`write_class`:
``gradebook.csv`` with the grader's own points (``needs_manual`` true while a discussion has no
points), ``manual.csv`` for the instructor (entered points kept) and ``discussions.html``.
``finalize`` reads the filled-in ``manual.csv``, refuses it with every bad row named (row and
column), and writes ``gradebook.csv`` (joined with ``--roster`` when given) and
``feedback/<student>.html`` for each student.
"""
from __future__ import annotations

import csv
import sys
from pathlib import Path

from grader import collect, gradebook, pages, rubric, sheet, students
from grader.schema import Summary
from labutils import atomic

DISCUSSIONS = "discussions.html"
FEEDBACK = "feedback"
# What grading writes for the class (a pod writes them for its one student: merge leaves those behind).
CLASS_FILES = (gradebook.GRADEBOOK, sheet.SHEET, DISCUSSIONS)


def write_class(summary: Summary, out: Path) -> None:
    """The gradebook (automatic points and any entered ones), the instructor's sheet and ``discussions.html``."""
    sheet.write(out, summary)
    entries, _ = sheet.read(out, summary)  # a bad row is reported by finalize; here it counts as not entered
    gradebook.write(out, summary, entries)
    atomic.write_text(out / DISCUSSIONS, pages.discussions_page(summary, out))


def load(out: Path) -> Summary:
    """The class's ``summary.json`` in ``out``; ValueError saying why there is none."""
    try:
        return Summary.from_json(collect.read_bounded(out / "summary.json", collect.OUTPUT_CAP))
    except (collect.Unreadable, ValueError, KeyError, TypeError) as err:
        raise ValueError(f"{out / 'summary.json'}: not a grading summary ({type(err).__name__}: {err})") from err


def finalize(out: Path, roster: Path | None = None) -> list[str]:
    """Write the final gradebook and the feedback pages; returns the problems (nothing written when any)."""
    summary = load(out)
    entries, problems = sheet.read(out, summary)
    try:
        lms = gradebook.read_roster(roster) if roster is not None else None
    except (OSError, ValueError) as err:
        problems.append(f"--roster: {err}")
    if problems:
        return problems
    rubric.check()
    book = gradebook.write(out, summary, entries, lms)
    totals = {row["student"]: row for row in gradebook_rows(book)}
    for run in summary.runs:
        mark = totals.get(run.name, {})
        total = f"{mark.get('total', '')} of {mark.get('maximum', '')}" + (
            " (discussions not yet graded)" if mark.get("needs_manual") == "true" else "")
        atomic.write_text(out / FEEDBACK / f"{students.folder_name(run.name)}.html",
                          pages.feedback_page(summary, run, out, entries, total))
    return []


def gradebook_rows(path: Path) -> list[dict[str, str]]:
    """The rows of a gradebook the grader wrote."""
    with open(path, newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def main(args, error) -> int:
    """``python -m grader finalize OUT``: 0 when the gradebook and feedback were written, 1 with every problem."""
    if not (args.out_dir / "summary.json").is_file():
        error(f"{args.out_dir}: no summary.json (grade the class first: python -m grader run --submissions DIR)")
    try:
        problems = finalize(args.out_dir.resolve(), args.roster)
    except ValueError as err:
        problems = [str(err)]
    for problem in problems:
        print(f"finalize: {problem}", file=sys.stderr)
    if problems:
        return 1
    book = args.out_dir / gradebook.GRADEBOOK
    waiting = sum(row["needs_manual"] == "true" for row in gradebook_rows(book))
    print(f"gradebook: {book} ({waiting} student(s) still need manual points); feedback: {args.out_dir / FEEDBACK}/")
    return 0
