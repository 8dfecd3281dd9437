"""One class report from many pods: ``python -m grader merge RESULTS_DIR --submissions DIR --out OUT``.

Each Kubernetes pod (``python -m grader k8s``) grades one student as a
single repository and publishes ``RESULTS_DIR/<student>/`` (``summary.json``,
``report.md``, executed notebooks, logs). This command writes into ``OUT`` the
``summary.json`` and ``report.md`` that one local ``--submissions DIR`` run would
have written: the class is the student folders of ``DIR`` (the list the Job was
written from), in the same order, each with its rows, deliverables and files
(copied to ``OUT/students/<name>/``). A student without a result (a lost pod) is
a row ``no result``; a damaged per-student summary is a row naming the file and
the parse error. Nothing of a student's result is trusted beyond what the pod's
grader wrote; files are read bounded, regular files only.

The class report adds what a teacher would rather look at than read: per
deliverable, how many students met it, and ``class_roc_auc.png``, the spread of
the grader-computed test ROC-AUC of the Lab 4 and transfer models across the class;
and, as a local run does, ``gradebook.csv``, ``manual.csv`` and ``discussions.html``
(``finalize.write_class``), from what each pod's summary and thumbnails hold.
"""
from __future__ import annotations

import dataclasses
import os
import shutil
import stat
import time
from pathlib import Path

from grader import collect, finalize, report, students
from grader.schema import Isolation, Run, Summary
from labutils import atomic

SUMMARY_CAP = collect.OUTPUT_CAP  # one student's summary.json
# Per-run facts of the pods' runs that say nothing about the students: taken from the first result.
RUN_FIELDS = ("profile", "profile_reason", "parameters", "timeout", "environment", "keras_home", "missing_assets",
              "isolation", "started", "cpus")


def _copy_files(source: Path, target: Path) -> None:
    """Copy the regular files below ``source`` (links and special files skipped) to ``target``, capped."""
    for entry in sorted(os.scandir(source), key=lambda e: e.name):
        kind = entry.stat(follow_symlinks=False).st_mode
        if stat.S_ISDIR(kind):
            _copy_files(Path(entry.path), target / entry.name)
        elif stat.S_ISREG(kind) and entry.name not in ("summary.json", "report.md", students.MARKER,
                                                       *finalize.CLASS_FILES):
            if entry.stat(follow_symlinks=False).st_size <= collect.PARSE_CAP:
                target.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(entry.path, target / entry.name, follow_symlinks=False)


def read_student(results: Path, name: str) -> tuple[Summary | None, str | None]:
    """``(summary, problem)`` of one student's pod result; ``problem`` says why there is none."""
    folder = results / name
    path = folder / "summary.json"
    if folder.is_symlink() or not folder.is_dir() or not (path.exists() or path.is_symlink()):
        return None, f"no result: {path} missing (the pod did not finish or was lost)"
    try:
        summary = Summary.from_json(collect.read_bounded(path, SUMMARY_CAP))
        if len(summary.runs) != 1:
            raise ValueError(f"{len(summary.runs)} runs, not one")
    except (collect.Unreadable, ValueError, KeyError, TypeError) as err:
        return None, f"no result: {path}: {type(err).__name__}: {err}"
    return summary, None


def _student(results: Path, name: str, root: Path, out: Path, submissions: Path) -> tuple[Run, Summary | None]:
    """One student's row, from their pod's result (copied into ``out``), or a row saying why there is none."""
    folder = students.output_folder(name)
    summary, problem = read_student(results, name)
    if problem:
        return Run(name, str(root), folder, problem), None
    # The pod graded a private copy under another name and path: the row is the student's.
    run = dataclasses.replace(summary.runs[0], name=name, root=str(root), folder=folder)
    _copy_files(results / name, out / folder)
    single = dataclasses.replace(summary, runs=[run], submissions=str(submissions.resolve()), out=str(out))
    atomic.write_text(out / folder / "summary.json", single.to_json())
    atomic.write_text(out / folder / "report.md", report.render_run(single, run))
    return run, summary


def merge(results: Path, submissions: Path, out: Path) -> Summary:
    """Write ``out/summary.json`` and ``out/report.md`` for the class of ``submissions``; returns the summary."""
    start = time.monotonic()
    classmates, not_graded = students.submissions(submissions.resolve(), out.resolve())
    runs, first = [], None
    for name, root in classmates.items():
        run, summary = _student(results, name, root, out, submissions)
        runs.append(run)
        first = first or summary
    base = {key: getattr(first, key) for key in RUN_FIELDS} if first else {
        "profile": None, "profile_reason": "", "parameters": {}, "timeout": 0,
        "isolation": Isolation("unknown", "no pod left a result")}
    complete = all(run.state == "graded" for run in runs)
    summary = Summary(**base, jobs=len(runs), submissions=str(submissions.resolve()), out=str(out),
                      merged_from=str(results.resolve()), complete=complete, runs=runs, not_graded=not_graded,
                      state="complete" if complete else
                      f"merged: {sum(r.state != 'graded' for r in runs)} of {len(runs)} students without a full result")
    students.mark_output(out, "merge")
    summary.class_figure = report.write_class_figure(summary, out)
    summary.seconds = round(time.monotonic() - start, 1)
    atomic.write_text(out / "summary.json", summary.to_json())
    atomic.write_text(out / "report.md", report.render_combined(summary))
    finalize.write_class(summary, out)
    return summary


def main(args, error) -> int:
    """``python -m grader merge``: the class report of the pods' results; 0 only if every notebook passed."""
    for option, folder in (("RESULTS_DIR", args.results), ("--submissions", args.submissions)):
        if not folder.is_dir():
            error(f"{option} {folder}: no such folder")
    summary = merge(args.results, args.submissions, args.out.resolve())
    print(f"{len(summary.runs)} students, {sum(r.state == 'graded' for r in summary.runs)} with a result; "
          f"report: {args.out / 'report.md'}")
    return 0 if summary.passed else 1
