"""One class report from many pods (``python -m grader merge``): three tiny students graded in one
local ``--submissions`` run and, as the Kubernetes pods grade them, one at a time, then merged. The two
summaries must agree field by field, timings excepted."""
from __future__ import annotations

import json
import re
import os
import shutil
import subprocess
import sys
from pathlib import Path

from test_grade import CIFAR, MAKE, USE, repository, run_grader, student_rows

COURSE = ("01_make", "02_use")
# What differs between two runs of the same grading: clocks, parallelism, and where the outputs went.
RUN_SPECIFIC = {"started", "ended", "seconds", "jobs", "cpus", "out", "merged_from"}


def without_timings(node):
    if isinstance(node, dict):
        return {k: without_timings(v) for k, v in node.items() if k not in RUN_SPECIFIC}
    if isinstance(node, list):
        return [without_timings(v) for v in node]
    return node


def grade_one_as_a_pod(course: Path, student: Path, out: Path) -> None:
    """What a pod does: grade a private copy of one student as a single repository, into its results folder."""
    copy = out.parent / f".copy-{student.name}"
    shutil.copytree(student, copy)
    env = {**os.environ, "LAB5_ROOT": str(copy), "TF_CPP_MIN_LOG_LEVEL": "2", "LAB5_CIFAR10": str(CIFAR)}
    env.pop("LAB5_PROFILE", None)
    subprocess.run([sys.executable, "-m", "grader", "--profile", "smoke", "--sandbox", "none", "--out",
                    str(out)], cwd=course, env=env, capture_output=True, text=True, timeout=300)
    shutil.rmtree(copy)


def test_merging_pod_results_gives_the_local_class_report(tmp_path):
    course = repository(tmp_path / "course", {}, course=COURSE)
    subs = tmp_path / "subs"
    repository(subs / "alice", {"01_make": [MAKE], "02_use": [USE]})
    repository(subs / "bob", {"01_make": ["raise ValueError('bob broke it')"], "02_use": [USE]})
    repository(subs / "carol smith", {"01_make": [MAKE]})  # 02 missing

    local = run_grader(course, "--profile", "smoke", "--submissions", str(subs), "--out", str(tmp_path / "local"),
                       "--sandbox", "none", "--jobs", "1")
    assert local.returncode == 1, local.stdout[-2000:]
    results = tmp_path / "results"
    for student in sorted(subs.iterdir()):
        grade_one_as_a_pod(course, student, results / student.name)
    merged = subprocess.run([sys.executable, "-m", "grader", "merge", str(results), "--submissions",
                             str(subs), "--out", str(tmp_path / "merged")], cwd=course,
                            capture_output=True, text=True, timeout=120)
    assert merged.returncode == 1, merged.stderr  # bob failed: the class did not pass

    want = json.loads((tmp_path / "local" / "summary.json").read_text())
    got = json.loads((tmp_path / "merged" / "summary.json").read_text())
    assert [r["name"] for r in got["runs"]] == ["alice", "bob", "carol smith"]
    assert without_timings(got) == without_timings(want)
    for run in got["runs"]:  # each student's own files and report, where the local run puts them
        assert (tmp_path / "merged" / run["folder"] / "report.md").is_file()
        assert (tmp_path / "merged" / run["folder"] / "01_make.ipynb").is_file()
    # the same report, but for the clocks: start time, and each notebook's seconds
    strip = lambda text: [re.sub(r"\(\d+ s\)", "(s)", line) for line in text.splitlines()
                          if not line.startswith("- Started")]
    assert strip((tmp_path / "merged" / "report.md").read_text()) == strip((tmp_path / "local" / "report.md").read_text())
    # the grades and what a person reads: the same from the pods as from one local run
    for name in ("gradebook.csv", "manual.csv", "discussions.html"):
        assert (tmp_path / "merged" / name).read_text() == (tmp_path / "local" / name).read_text(), name
    assert (tmp_path / "local" / "gradebook.csv").read_text().splitlines()[1:] != []


def test_a_lost_pod_and_a_damaged_result_are_rows_not_gaps(tmp_path):
    course = repository(tmp_path / "course", {}, course=COURSE)
    subs = tmp_path / "subs"
    for name in ("alice", "bob", "carol"):
        repository(subs / name, {"01_make": [MAKE], "02_use": [USE]})
    results = tmp_path / "results"
    grade_one_as_a_pod(course, subs / "alice", results / "alice")
    (results / "bob").mkdir(parents=True)
    (results / "bob" / "summary.json").write_text('{"runs": [')  # cut short
    # carol: no folder at all (the pod was lost)

    merged = subprocess.run([sys.executable, "-m", "grader", "merge", str(results), "--submissions",
                             str(subs), "--out", str(tmp_path / "merged")], cwd=course,
                            capture_output=True, text=True, timeout=120)

    assert merged.returncode == 1
    summary = json.loads((tmp_path / "merged" / "summary.json").read_text())
    runs = {r["name"]: r for r in summary["runs"]}
    assert list(runs) == ["alice", "bob", "carol"] and not summary["complete"]
    assert runs["alice"]["state"] == "graded" and runs["alice"]["all_passed"]
    assert runs["bob"]["state"].startswith(f"no result: {results / 'bob' / 'summary.json'}: JSONDecodeError")
    assert runs["carol"]["state"].startswith("no result:") and "missing" in runs["carol"]["state"]
    report_md = (tmp_path / "merged" / "report.md").read_text()
    rows = student_rows(report_md)
    assert "no result" in rows["bob"] and "JSONDecodeError" in rows["bob"] and "no result" in rows["carol"]
