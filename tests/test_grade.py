"""The headless grader, run as graders run it (``python -m labutils.grade``) on tiny throwaway repositories.

Each repository is a temp folder laid out like this one: a copy of ``labutils``
and ``notebooks/NN_*.ipynb`` that import nothing heavier than ``labutils.config``.
"""
from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import psutil
import pytest

from labutils import config, grade

REPO = Path(__file__).resolve().parents[1]
WRITE = """import json, os
from labutils import config
config.RESULTS_DIR.mkdir(parents=True, exist_ok=True)
seen = {"root": str(config.ROOT), "cwd": os.getcwd(), "profile": profile}
"""
# 01 writes the manifest 02 and 03 need; 02 writes two models' metrics, like the lab's notebook 02.
MAKE = WRITE + """(config.RECORDS_DIR / "manifest.json").write_text("{}")
(config.RESULTS_DIR / "01_make.json").write_text(json.dumps({**seen, "test_examples": 400,
    "metrics": {"roc_auc": 0.9, "pr_auc": 0.5, "f1": 0.4}}))"""
USE = WRITE + """assert (config.RECORDS_DIR / "manifest.json").exists(), "run 01 first"
(config.RESULTS_DIR / "02_use.json").write_text(json.dumps({**seen, "test_examples": 400,
    "metrics": {"roc_auc": 0.81, "pr_auc": 0.41, "f1": 0.31}, "models": {
    "ram": {"metrics": {"roc_auc": 0.8 * scale, "pr_auc": 0.4, "f1": F1}},
    "tfrecord": {"metrics": {"roc_auc": 0.81, "pr_auc": 0.41, "f1": 0.31}}}}))"""


def notebook(folder: Path, name: str, *cells: str, params: str = "profile = 'full'\nscale = 1\nF1 = 0.3") -> Path:
    """``folder/notebooks/name.ipynb``: a markdown cell, a ``parameters`` cell, then ``cells`` (cell 3 onwards)."""
    nb = nbformat.v4.new_notebook()
    parameters = nbformat.v4.new_code_cell(params)
    parameters.metadata["tags"] = ["parameters"]
    nb.cells = [nbformat.v4.new_markdown_cell(f"# {name}"), parameters, *map(nbformat.v4.new_code_cell, cells)]
    # A kernel this machine does not have: the grader must use its own, never "No such kernel".
    nb.metadata["kernelspec"] = {"name": "no-such-kernel", "display_name": "elsewhere", "language": "python"}
    path = folder / "notebooks" / f"{name}.ipynb"
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, path)
    return path


def repository(folder: Path, notebooks: dict[str, list[str]]) -> Path:
    shutil.copytree(REPO / "labutils", folder / "labutils", ignore=shutil.ignore_patterns("__pycache__"))
    (folder / "records").mkdir()
    for name, cells in notebooks.items():
        notebook(folder, name, *cells)
    return folder


def run_grader(cwd: Path, *args: str, timeout: float = 180) -> subprocess.CompletedProcess:
    env = {**os.environ, "LAB5_ROOT": str(cwd), "TF_CPP_MIN_LOG_LEVEL": "2"}
    env.pop("LAB5_PROFILE", None)
    return subprocess.run([sys.executable, "-m", "labutils.grade", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=timeout)


def by_notebook(summary: dict, run: int = 0) -> dict[str, dict]:
    return {nb["notebook"][:2]: nb for nb in summary["runs"][run]["notebooks"]}


def test_a_failing_notebook_is_reported_at_its_cell_and_the_others_pass(tmp_path):
    repo = repository(tmp_path / "lab", {
        "01_make": [MAKE],
        "02_use": [USE],
        "03_broken": ["total = 1", "raise RuntimeError(f'found {total} cat | expected 40')", "print('never')"],
        "04_free": ["print('free')"],
    })
    sources = {p: p.read_bytes() for p in (repo / "notebooks").glob("*.ipynb")}

    run = run_grader(repo, "--profile", "smoke", "-p", "scale", "0.5")

    assert run.returncode != 0
    summary = json.loads((repo / "graded" / "summary.json").read_text())
    nbs = by_notebook(summary)
    assert [nbs[n]["status"] for n in ("01", "02", "03", "04")] == ["passed", "passed", "failed", "passed"]
    broken = nbs["03"]
    assert broken["cell"] == 4 and broken["error"] == "RuntimeError"
    assert broken["message"] == "found 1 cat | expected 40"
    report = (repo / "graded" / "report.md").read_text()
    assert "03_broken.ipynb | failed at cell 4" in report and "RuntimeError: found 1 cat | expected 40" in report
    assert "Profile: **smoke**" in report and "Python 3." in report and "TensorFlow" in report and "GPU:" in report

    # parameters reached the notebooks, whose results are collected flat, per model
    ram = next(row for row in nbs["02"]["metrics"] if row["model"] == "ram")
    assert ram["roc_auc"] == pytest.approx(0.4) and ram["test_examples"] == 400 and ram["profile"] == "smoke"
    assert {row["model"] for row in nbs["02"]["metrics"]} == {"ram", "tfrecord"}
    assert nbs["01"]["metrics"][0]["roc_auc"] == 0.9 and nbs["01"]["results"] == ["records/results/01_make.json"]
    assert "| 02_use.ipynb | passed |" in report and "| ram | 0.400 | 0.400 | 0.300 | 400 |" in report

    # executed copies in graded/, the sources untouched and still without outputs
    executed = nbformat.read(repo / "graded" / "03_broken.ipynb", as_version=4)
    assert any(o.get("ename") == "RuntimeError" for c in executed.cells for o in c.get("outputs", []))
    assert all(p.read_bytes() == before for p, before in sources.items())
    assert "No such kernel" not in run.stdout + run.stderr
    for line in ("03_broken.ipynb: started", "03_broken.ipynb: failed at cell 4: RuntimeError"):
        assert line in run.stdout


def test_a_notebook_whose_input_failed_is_skipped(tmp_path):
    repo = repository(tmp_path / "lab", {
        "01_make": ["raise OSError('disk full')"], "02_use": [USE], "03_compare": [USE], "04_free": ["x = 1"]})

    run = run_grader(repo, "--profile", "smoke")

    assert run.returncode != 0
    nbs = by_notebook(json.loads((repo / "graded" / "summary.json").read_text()))
    assert (nbs["01"]["status"], nbs["01"]["error"], nbs["01"]["cell"]) == ("failed", "OSError", 3)
    assert (nbs["02"]["status"], nbs["02"]["reason"]) == ("skipped", "needs 01")
    assert nbs["03"]["status"] == "skipped" and nbs["03"]["reason"].startswith("needs 01")
    assert nbs["04"]["status"] == "passed"
    assert "skipped: needs 01" in (repo / "graded" / "report.md").read_text()
    assert not (repo / "graded" / "02_use.ipynb").exists()


def test_a_dying_kernel_is_a_failure_at_its_cell(tmp_path):
    repo = repository(tmp_path / "lab", {"04_dies": ["import os", "os.kill(os.getpid(), 9)", "print('never')"]})

    run = run_grader(repo, "--profile", "smoke")

    assert run.returncode != 0
    dies = by_notebook(json.loads((repo / "graded" / "summary.json").read_text()))["04"]
    assert (dies["status"], dies["cell"], dies["error"]) == ("failed", 4, "DeadKernelError")


def test_a_notebook_past_the_timeout_is_stopped_and_the_run_goes_on(tmp_path):
    repo = repository(tmp_path / "lab", {
        # sum() over a range holds the GIL: the kernel cannot notice its parent is gone, it must be killed
        "05_slow": ["import os\nopen('kernel.pid', 'w').write(str(os.getpid()))", "sum(range(10**14))"],
        "06_after": [MAKE],
    })

    run = run_grader(repo, "--profile", "smoke", "--timeout", "12", timeout=120)

    assert run.returncode != 0
    nbs = by_notebook(json.loads((repo / "graded" / "summary.json").read_text()))
    slow = nbs["05"]
    assert slow["status"] == "timed out" and slow["cell"] == 4
    assert 12 <= slow["seconds"] < 30
    assert nbs["06"]["status"] == "passed"
    kernel = int((repo / "notebooks" / "kernel.pid").read_text())
    try:
        assert not psutil.pid_exists(kernel) or psutil.Process(kernel).status() == psutil.STATUS_ZOMBIE
    finally:
        with contextlib.suppress(psutil.NoSuchProcess):
            psutil.Process(kernel).kill()
    assert "05_slow.ipynb | timed out at cell 4" in (repo / "graded" / "report.md").read_text()


def test_submissions_are_graded_in_parallel_each_in_its_own_copy(tmp_path):
    template = {"01_make": [MAKE], "02_use": [USE]}
    subs = tmp_path / "submissions"
    for student in ("alice", "bob", "carol"):
        repository(subs / student, template)
    notebook(subs / "bob", "02_use", USE, params="profile = 'full'\nscale = 1\nF1 = 0.7")  # bob's own model
    notebook(subs / "carol", "01_make", "raise ValueError('carol broke it')")
    (subs / "notes.txt").write_text("not a submission")
    out = tmp_path / "graded"

    course = repository(tmp_path / "course", {})  # the grader's own copy, no notebooks of its own
    run = run_grader(course, "--profile", "smoke", "--submissions", str(subs), "--jobs", "3", "--out", str(out))

    assert run.returncode != 0  # carol failed
    summary = json.loads((out / "summary.json").read_text())
    runs = {r["name"]: r for r in summary["runs"]}
    assert set(runs) == {"alice", "bob", "carol"} and summary["jobs"] == 3
    nbs = {name: {nb["notebook"][:2]: nb for nb in r["notebooks"]} for name, r in runs.items()}

    def f1(student: str, model: str = "ram") -> float:
        return next(row["f1"] for row in nbs[student]["02"]["metrics"] if row["model"] == model)

    assert runs["alice"]["all_passed"] and runs["bob"]["all_passed"]
    assert nbs["alice"]["01"]["metrics"] == nbs["bob"]["01"]["metrics"]
    assert (f1("alice"), f1("bob")) == (0.3, 0.7)  # bob's change shows in bob's row only
    assert f1("alice", "tfrecord") == f1("bob", "tfrecord")
    assert (nbs["carol"]["01"]["status"], nbs["carol"]["02"]["status"]) == ("failed", "skipped")

    for student in ("alice", "bob"):  # each ran in its own copy, with its own records/
        written = json.loads((subs / student / "records" / "results" / "02_use.json").read_text())
        assert written["root"] == str(subs / student) and written["cwd"] == str(subs / student / "notebooks")
        assert (out / student / "02_use.ipynb").exists() and (out / student / "report.md").exists()
    assert not (subs / "carol" / "records" / "manifest.json").exists()

    spans = {s: (dt.datetime.fromisoformat(nbs[s]["01"]["started"]), dt.datetime.fromisoformat(nbs[s]["01"]["ended"]))
             for s in ("alice", "bob")}
    assert spans["alice"][0] <= spans["bob"][1] and spans["bob"][0] <= spans["alice"][1]  # they overlapped

    report = (out / "report.md").read_text()
    rows = {line.split("|")[1].strip(): line for line in report.splitlines() if line.startswith("| ")}
    assert "F1 0.300" in rows["alice"] and "F1 0.700" in rows["bob"] and "F1 0.700" not in rows["alice"]
    assert "skipped: needs 01" in rows["carol"] and "carol/01_make.ipynb: failed at cell 3" in report


# ---- the parts, without notebooks -----------------------------------------------------------------------

def test_metrics_are_collected_from_any_shape_and_odd_files_do_not_stop_it(tmp_path):
    results = tmp_path / "records" / "results"
    results.mkdir(parents=True)
    (results / "old.json").write_text(json.dumps({"metrics": {"roc_auc": 0.1}}))
    before = grade._snapshot(results)
    (results / "03_transfer.json").write_text(json.dumps({
        "profile": "smoke", "test_examples": 846, "backbone": "resnet50",
        "metrics": {"roc_auc": 0.93, "pr_auc": 0.7, "f1": float("nan")},
        "phases": {"head": {"metrics": {"f1": 0.5}}, "finetune": {"roc_auc": 0.95, "test_examples": 100}},
        "history": [1, 2, 3], "note": "text"}))
    (results / "broken.json").write_text("{not json")

    files, rows = grade.collect_results(results, before, tmp_path)

    assert files == ["records/results/03_transfer.json", "records/results/broken.json"]  # not the stale one
    assert rows[0] == {"source": "03_transfer.json", "model": "resnet50", "profile": "smoke", "test_examples": 846,
                       "roc_auc": 0.93, "pr_auc": 0.7}  # NaN left out
    assert rows[1]["model"] == "phases/head" and rows[1]["test_examples"] == 846
    assert rows[2]["model"] == "phases/finetune" and rows[2]["test_examples"] == 100
    assert rows[3]["source"] == "broken.json" and "unreadable" in rows[3]
    assert grade.key_metrics([1, 2], "list.json") == [] and grade.key_metrics({"f1": True}, "b.json") == []


def test_parameter_values_are_typed_like_papermills():
    assert [grade.parse_value(v) for v in ("3", "0.5", "true", "False", "None", "[1, 2]", "resnet50", "1e-3")] \
        == [3, 0.5, True, False, None, [1, 2], "resnet50", 0.001]


def test_default_jobs_fit_the_machine():
    cpus, memory_gb = grade.machine()
    jobs = grade.default_jobs("full")
    assert 1 <= jobs <= max(1, cpus // 2)
    assert jobs == 1 or jobs * config.GRADE_JOB_MEMORY_GB["full"] <= memory_gb
