"""One class report from many pods: ``python -m labutils.grade merge RESULTS_DIR --submissions DIR --out OUT``.

Each Kubernetes pod (``python -m labutils.grade k8s``) grades one student as a
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
the grader-computed test ROC-AUC of the Lab 4 and transfer models across the class.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import stat
import time
from pathlib import Path

from labutils import atomic
from labutils.grade import cli, collect, report

SUMMARY_CAP = collect.OUTPUT_CAP  # one student's summary.json
# Per-run facts of the pods' runs that say nothing about the students: taken from the first result.
RUN_FIELDS = ("profile", "parameters", "timeout", "environment", "keras_home", "missing_assets", "isolation")


def _copy_files(source: Path, target: Path) -> None:
    """Copy the regular files below ``source`` (links and special files skipped) to ``target``, capped."""
    for entry in sorted(os.scandir(source), key=lambda e: e.name):
        kind = entry.stat(follow_symlinks=False).st_mode
        if stat.S_ISDIR(kind):
            _copy_files(Path(entry.path), target / entry.name)
        elif stat.S_ISREG(kind) and entry.name not in ("summary.json", "report.md", cli.MARKER):
            if entry.stat(follow_symlinks=False).st_size <= collect.PARSE_CAP:
                target.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(entry.path, target / entry.name, follow_symlinks=False)


def read_student(results: Path, name: str) -> tuple[dict | None, dict | None, str | None]:
    """``(summary, run, problem)`` of one student's pod result; ``problem`` says why there is none."""
    folder = results / name
    path = folder / "summary.json"
    if folder.is_symlink() or not folder.is_dir() or not (path.exists() or path.is_symlink()):
        return None, None, f"no result: {path} missing (the pod did not finish or was lost)"
    try:
        summary = json.loads(collect.read_bounded(path, SUMMARY_CAP))
        run = summary["runs"][0]
        if not isinstance(run, dict) or not isinstance(run.get("notebooks"), list):
            raise ValueError("runs[0] has no notebooks list")
    except (collect.Unreadable, ValueError, KeyError, IndexError, TypeError) as err:
        return None, None, f"no result: {path}: {type(err).__name__}: {err}"
    return summary, run, None


def merge(results: Path, submissions: Path, out: Path) -> dict:
    """Write ``out/summary.json`` and ``out/report.md`` for the class of ``submissions``; returns the summary."""
    start = time.monotonic()
    students, not_graded = cli.submissions(submissions.resolve(), out.resolve())
    runs, first = [], None
    for name, root in students.items():
        folder = f"students/{cli.folder_name(name)}"
        summary, run, problem = read_student(results, name)
        if problem:
            runs.append(cli.make_run(name, root, folder, [], problem))
            continue
        first = first or summary
        # The pod graded a private copy under another name and path: the row is the student's.
        runs.append({**run, "name": name, "root": str(root), "folder": folder})
        _copy_files(results / name, out / folder)
        single = {**summary, "runs": [runs[-1]], "submissions": str(submissions.resolve()), "out": str(out)}
        atomic.write_text(out / folder / "summary.json", json.dumps(single, indent=1) + "\n")
        atomic.write_text(out / folder / "report.md", report.render_run(single, runs[-1]))
    complete = all(run["state"] == "graded" for run in runs)
    base = {key: first[key] for key in RUN_FIELDS} if first else {
        "profile": None, "parameters": {}, "timeout": 0, "environment": {"python": None, "tensorflow": None,
        "keras": None, "gpus": None}, "keras_home": None, "missing_assets": [],
        "isolation": {"mode": "unknown", "statement": "no pod left a result"}}
    summary = {**base, "started": first["started"] if first else None, "seconds": round(time.monotonic() - start, 1),
               "jobs": len(runs), "cpus": first["cpus"] if first else 0,
               "submissions": str(submissions.resolve()), "out": str(out), "merged_from": str(results.resolve()),
               "complete": complete, "state": "complete" if complete else
               f"merged: {sum(r['state'] != 'graded' for r in runs)} of {len(runs)} students without a full result",
               "passed": complete and all(r["all_passed"] for r in runs), "runs": runs, "not_graded": not_graded}
    out.mkdir(parents=True, exist_ok=True)
    (out / cli.MARKER).write_text("Written by python -m labutils.grade merge: never graded as a submission.\n")
    summary["class_figure"] = report.write_class_figure(summary, out)
    atomic.write_text(out / "summary.json", json.dumps(summary, indent=1) + "\n")
    atomic.write_text(out / "report.md", report.render_combined(summary))
    return summary


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m labutils.grade merge", description=__doc__.split("\n\n")[0])
    parser.add_argument("results", type=Path, metavar="RESULTS_DIR", help="one folder per student, as the pods wrote them")
    parser.add_argument("--submissions", type=Path, required=True, metavar="DIR",
                        help="the class: the student folders the Job was written from")
    parser.add_argument("--out", type=Path, required=True, help="where the class summary.json and report.md go")
    args = parser.parse_args(argv)
    for option, folder in (("RESULTS_DIR", args.results), ("--submissions", args.submissions)):
        if not folder.is_dir():
            parser.error(f"{option} {folder}: no such folder")
    summary = merge(args.results, args.submissions, args.out.resolve())
    print(f"{len(summary['runs'])} students, {sum(r['state'] == 'graded' for r in summary['runs'])} with a result; "
          f"report: {args.out / 'report.md'}")
    return 0 if summary["passed"] else 1
