"""Resource limits per graded student (``grader.limits``): memory, processes and disk, on cheap fake submissions.

A class of four is graded once (``graded_class``, two at a time, ~1-2 min) with ``--sandbox bwrap --memory-gb 1
--max-processes 200 --disk-gb 0.5 --require-limits``: one student allocates 3 GB, one starts 600
``sleep`` children, one writes 2 GB into its copy, one behaves. Each is stopped by its own limit, at its
cell, and the next notebook and the next student are graded as usual. Where limits cannot apply here
(no writable control groups, not root) these tests skip, saying why; in CI (``CI=true``) they fail.
"""
from __future__ import annotations

import dataclasses
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil
import pytest

from grader import limits
from test_grade import by_notebook, kill_all, need_bwrap, processes_with, repository, run_grader, student_rows

LIMIT_ARGS = ("--sandbox", "bwrap", "--memory-gb", "1", "--max-processes", "200", "--disk-gb", "0.5")
TOKEN = f"{time.time_ns() % 10**9:09d}"  # in the sleeps' duration and the written files' names: nothing else has it
SLEEP = f"120.{TOKEN}"  # `sleep 120.<token>`: 120 s, and findable
MEMORY = """import numpy as np
blocks = []
for step in range(30):  # 100 MB more at a time, every page touched, up to 3 GB
    blocks.append(np.ones(100 * 2**20, dtype=np.uint8))
print('allocated 3 GB')"""
PROCESSES = f"""import subprocess
children = []
for n in range(600):
    children.append(subprocess.Popen(['sleep', {SLEEP!r}]))
print('started', len(children))"""
DISK = f"""from labutils import config
folder = config.ROOT / 'checkpoints'
folder.mkdir(exist_ok=True)
chunk = b'\\1' * (64 * 2**20)
for n in range(32):  # a checkpoint every batch: 64 MB at a time, up to 2 GB
    (folder / f'ckpt-{TOKEN}-{{n}}.bin').write_bytes(chunk)
print('wrote 2 GB')"""
GOOD = """import json
from labutils import config
config.RESULTS_DIR.mkdir(parents=True, exist_ok=True)
(config.RESULTS_DIR / '01_work.json').write_text(json.dumps({'metrics': {'roc_auc': 0.9, 'pr_auc': 0.5, 'f1': 0.4}}))
print('fine')"""
COURSE = ("01_work", "05_after")  # 05 does not need 01: it runs whatever 01 did
STUDENTS = {"a_memory": MEMORY, "b_processes": PROCESSES, "c_disk": DISK, "d_good": GOOD}


def need_limits() -> None:
    """Skip where memory, process or disk limits cannot be applied, saying why; in CI (CI=true) fail instead."""
    need_bwrap()
    support = limits.detect(Path(tempfile.gettempdir()))
    limits.release(support)
    if support.missing():
        problem = "; ".join(filter(None, (support.cgroup_problem, support.tmpfs_problem)))
        (pytest.fail if os.environ.get("CI", "").lower() == "true" else pytest.skip)(f"needs limits: {problem}")


def leftovers() -> tuple[list[str], list[str]]:
    """The grader's tmpfs mounts and control groups still present (none should outlive a grading run)."""
    mounts = [line for line in Path("/proc/self/mounts").read_text().splitlines()
              if line.split()[0] == limits.SOURCE]
    groups = [str(p) for p in Path(limits.DEFAULT_ROOT).rglob(f"{limits.PREFIX}*")
              if p.is_dir() and p.name != f"{limits.PREFIX}{os.getpid()}"]
    return mounts, groups


def files_named(token: str) -> list[str]:
    """Files whose name holds ``token``, anywhere on the root file system, /tmp and /dev/shm."""
    found = subprocess.run(["find", "/", "/tmp", "/dev/shm", "-xdev", "-name", f"*{token}*"],
                           capture_output=True, text=True).stdout
    return sorted(set(found.split()))


@pytest.fixture(scope="module")
def graded_class(tmp_path_factory):
    """The class above, graded once: ``(completed process, output folder, leftover sleeps)``."""
    need_limits()
    tmp = tmp_path_factory.mktemp("limits")
    subs = tmp / "subs"
    for name, cell in STUDENTS.items():
        repository(subs / name, {"01_work": [cell], "05_after": ["print('after')"]})
    course = repository(tmp / "course", {}, course=COURSE)
    run = run_grader(course, "--profile", "smoke", "--submissions", str(subs), "--out", str(tmp / "out"),
                     "--jobs", "2", "--require-limits", *LIMIT_ARGS, timeout=600)
    left = processes_with(SLEEP)
    kill_all(left)
    return run, tmp / "out", left


def notebooks_of(out: Path, student: str) -> dict[str, dict]:
    summary = json.loads((out / "summary.json").read_text())
    return by_notebook(summary, [r["name"] for r in summary["runs"]].index(student))


def test_the_class_report_is_complete_and_names_the_limits(graded_class):
    run, out, _ = graded_class
    assert run.returncode == 1, run.stdout[-3000:] + run.stderr[-3000:]  # three students failed 01
    summary = json.loads((out / "summary.json").read_text())
    assert summary["complete"] and [r["state"] for r in summary["runs"]] == ["graded"] * 4
    isolation = summary["isolation"]
    assert isolation["missing_limits"] == []
    for words in ("Limits per student (cgroup v", "memory 1 GB", "200 processes/threads", "disk 0.5 GB"):
        assert words in isolation["limits"]
    report_md = (out / "report.md").read_text()
    line = next(ln for ln in report_md.splitlines() if ln.startswith("- Isolation:"))
    assert "bwrap:" in line and "Limits per student" in line and "NOT LIMITED" not in line
    assert "limits: Limits per student" in run.stdout and "WARNING: limits" not in run.stdout


@pytest.mark.parametrize("student, verdict", [("a_memory", "out of memory (limit 1 GB)"),
                                              ("b_processes", "process limit reached (200)"),
                                              ("c_disk", "disk limit reached (0.5 GB)")])
def test_a_notebook_stopped_by_a_limit_says_which_at_its_cell_and_the_next_runs(graded_class, student, verdict):
    run, out, _ = graded_class
    nbs = notebooks_of(out, student)
    stopped = nbs["01"]
    assert (stopped["status"], stopped["limit"], stopped["cell"]) == ("failed", verdict, 3), stopped
    assert stopped["message"].startswith(verdict)
    assert nbs["05"]["status"] == "passed"  # its next notebook, in the same limits (and full disk), as usual
    row = student_rows((out / "report.md").read_text())[student]
    assert f"failed: {verdict} at cell 3" in row
    own = (out / "students" / student / "report.md").read_text()
    assert f"01_work.ipynb | failed: {verdict} at cell 3" in own
    assert f"### 01_work.ipynb: failed: {verdict} at cell 3" in own and f"Error: {verdict}: " in own
    assert f"{student}/01_work.ipynb: failed at cell 3: {verdict}" in run.stdout


def test_no_child_outlives_the_grader_and_no_file_is_left(graded_class):
    _, out, left = graded_class
    assert left == []  # none of the ~190 sleeps the process limit let start
    assert files_named(TOKEN) == []  # the 0.5 GB written went with the student's tmpfs
    assert leftovers() == ([], [])
    assert not any(Path(tempfile.gettempdir()).glob("lab5-grade-*/c_disk"))


def test_a_well_behaved_student_passes_with_its_outputs_complete(graded_class):
    _, out, _ = graded_class
    nbs = notebooks_of(out, "d_good")
    assert [nbs[n]["status"] for n in ("01", "05")] == ["passed", "passed"]
    assert nbs["01"]["limit"] is None and nbs["01"]["results"] == ["records/results/01_work.json"]
    folder = out / "students" / "d_good"
    for name in ("01_work.ipynb", "05_after.ipynb", "logs/01_work.log", "logs/05_after.log", "summary.json",
                 "report.md"):
        assert (folder / name).is_file(), name
    assert "fine" in (folder / "01_work.ipynb").read_text()
    assert "2 of 2 notebooks passed" in (folder / "report.md").read_text()


def test_without_limits_the_report_says_so_and_require_limits_refuses(tmp_path, monkeypatch):
    need_bwrap()
    nowhere = tmp_path / "no-cgroups"  # no cgroup file system mounted here: no group can be made
    nowhere.mkdir()
    monkeypatch.setenv(limits.ROOT_ENV, str(nowhere))
    repo = repository(tmp_path / "lab", {"01_free": ["x = 1"]})

    refused = run_grader(repo, "--profile", "smoke", "--require-limits", *LIMIT_ARGS)
    assert refused.returncode == 2 and "--require-limits: no memory, processes" in refused.stderr
    assert "started" not in refused.stdout and not (repo / "graded").exists()  # refused before grading

    run = run_grader(repo, "--profile", "smoke", *LIMIT_ARGS)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    summary = json.loads((repo / "graded" / "summary.json").read_text())
    assert summary["isolation"]["missing_limits"][:2] == ["memory", "processes"]
    line = next(ln for ln in (repo / "graded" / "report.md").read_text().splitlines() if ln.startswith("- Isolation:"))
    assert "NOT LIMITED: memory, processes" in line and f"under {nowhere}" in line
    assert "WARNING: limits:" in run.stdout and "NOT LIMITED: memory, processes" in run.stdout


def test_no_limits_when_asked_for_none_and_the_report_says_so(tmp_path):
    need_bwrap()
    repo = repository(tmp_path / "lab", {"01_free": ["x = 1"]})
    refused = run_grader(repo, "--profile", "smoke", "--no-limits", "--require-limits")
    assert refused.returncode == 2 and "--no-limits goes with neither" in refused.stderr
    run = run_grader(repo, "--profile", "smoke", "--no-limits")
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    summary = json.loads((repo / "graded" / "summary.json").read_text())
    assert summary["isolation"]["missing_limits"] == ["memory", "processes", "disk"]
    line = next(ln for ln in (repo / "graded" / "report.md").read_text().splitlines() if ln.startswith("- Isolation:"))
    assert "bwrap:" in line and "NOT LIMITED: memory, processes, disk (--no-limits)" in line
    assert leftovers() == ([], [])


def test_a_grader_stopped_by_sigterm_leaves_no_group_mount_or_process(tmp_path):
    need_limits()
    repo = repository(tmp_path / "lab", {"01_wait": [f"import subprocess, time\n"
                                                     f"subprocess.Popen(['sleep', {SLEEP!r}])\ntime.sleep(600)"]})
    env = {**os.environ, "LAB5_ROOT": str(repo)}
    grader = subprocess.Popen([sys.executable, "-m", "grader", "--profile", "smoke", *LIMIT_ARGS], cwd=repo,
                              env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        for line in grader.stdout:
            if "01_wait.ipynb: started" in line:
                break
        deadline = time.monotonic() + 60
        while not processes_with(SLEEP) and time.monotonic() < deadline:  # the cell is running
            psutil.wait_procs([], timeout=0.5)
        assert leftovers()[0], "the student's tmpfs is mounted while it runs"
        grader.send_signal(signal.SIGTERM)
        rest = grader.communicate(timeout=120)[0]
    finally:
        if grader.poll() is None:
            grader.kill()
    left = processes_with(SLEEP)
    kill_all(left)
    assert grader.returncode == 130, rest
    assert left == [] and leftovers() == ([], [])
    assert by_notebook(json.loads((repo / "graded" / "summary.json").read_text()))["01"]["status"] == "interrupted"


def test_the_hierarchy_is_detected_not_assumed(tmp_path, monkeypatch):
    """v2, v1 read-only and a pod, on simulated trees (this machine has one kind only): the code that finds them."""
    v2 = tmp_path / "v2"
    (v2 / "grading").mkdir(parents=True)
    (v2 / "cgroup.controllers").write_text("cpu memory pids\n")
    (v2 / "grading" / "cgroup.subtree_control").write_text("memory pids\n")
    monkeypatch.setenv(limits.ROOT_ENV, str(v2))
    monkeypatch.setattr(limits, "_mounts", lambda: [(str(v2), "cgroup2", "rw,rw")])
    monkeypatch.setattr(limits, "_own_paths", lambda: {"": "/grading"})
    found = limits.detect(tmp_path)
    assert (found.version, found.memory, found.cgroup_problem) == (2, v2 / "grading" / f"{limits.PREFIX}{os.getpid()}",
                                                                   None)
    student = limits.StudentLimits(dataclasses.replace(found, tmpfs_problem="simulated"),
                                   limits.Limits(1, 200, 0.5), tmp_path / "work")
    student.start()
    (group,) = student.groups
    assert (group / "memory.max").read_text() == str(2**30) and (group / "pids.max").read_text() == "200"
    assert f"echo $$ > {group / 'cgroup.procs'}" in student.wrap(["true"])[2]
    (group / "memory.events").write_text("low 0\nhigh 0\nmax 9\noom 1\noom_kill 1\n")
    assert student.verdict({"oom_kill": 0}, "Kernel died") == "out of memory (limit 1 GB)"
    for path in [*group.iterdir(), found.memory / "cgroup.subtree_control"]:  # plain files here, not a cgroup's
        path.unlink()
    student.stop()
    limits.release(found)
    assert not group.exists() and not found.memory.exists()

    v1 = tmp_path / "v1"
    monkeypatch.setenv(limits.ROOT_ENV, str(v1))
    monkeypatch.setattr(limits, "_mounts", lambda: [(str(v1 / "memory"), "cgroup", "rw,ro,memory"),
                                                    (str(v1 / "pids"), "cgroup", "rw,rw,pids")])
    assert limits.detect(tmp_path).cgroup_problem == "the cgroup v1 memory hierarchy is mounted read-only"

    pod = limits.detect(tmp_path, pod=True)
    assert pod.missing() == [] and "Kubernetes pod's own" in limits.describe(limits.Limits(6, 1024, 4), pod)
