"""What the instructor's outputs cost on top of grading a class: ``python benchmarks/grades.py GRADED SUBS``.

GRADED is a class's output folder (``python -m grader --submissions SUBS --out GRADED``; e.g. the class that
``pytest --basetemp=/tmp/lr tests/test_lab_release.py`` grades: ``/tmp/lr/class0/graded`` and
``/tmp/lr/class0/subs``). Times, on a copy of GRADED, what grading adds for points and pages: scoring every
exercise (the self-check outcomes read from the executed notebooks, the solutions parsed with ``ast``),
``manual.csv`` + ``gradebook.csv`` + ``discussions.html`` (``finalize.write_class``) and ``finalize`` (the
feedback pages), beside the seconds the grading itself took (``summary.json``). Prints; asserts nothing.
"""
from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path

from grader import exercises, finalize, students
from labutils import course


def _seconds(work) -> float:
    start = time.perf_counter()
    work()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("graded", type=Path)
    parser.add_argument("subs", type=Path)
    args = parser.parse_args()
    summary = finalize.load(args.graded)
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "graded"
        shutil.copytree(args.graded, out)

        def score_all() -> None:
            for run in summary.runs:
                executed = out / students.output_folder(run.name)
                for nb, result in zip(course.NOTEBOOKS, run.notebooks):
                    exercises.score(nb, result, args.subs / run.name / "notebooks" / nb.name, executed / nb.name)

        rows = [("scoring every exercise (ast, self-check outcomes)", _seconds(score_all)),
                ("manual.csv, gradebook.csv, discussions.html", _seconds(lambda: finalize.write_class(summary, out))),
                ("finalize: gradebook and feedback pages", _seconds(lambda: finalize.finalize(out)))]
    added = sum(seconds for _, seconds in rows)
    print(f"{len(summary.runs)} students; grading took {summary.seconds:.1f} s ({summary.profile} profile)")
    for what, seconds in rows:
        print(f"  {what:<52} {seconds:7.2f} s")
    print(f"with these outputs / without: {(summary.seconds + added) / summary.seconds:.3f}x "
          f"(+{added:.2f} s on {summary.seconds:.1f} s)")


if __name__ == "__main__":
    main()
