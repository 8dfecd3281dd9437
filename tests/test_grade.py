"""The headless grader, run as graders run it (``python -m grader``) on tiny throwaway repositories.

Each repository is a temp folder laid out like this one: a copy of ``labutils`` and ``grader``
and ``notebooks/NN_*.ipynb`` that import nothing heavier than ``labutils.config``.
Grading runs use ``--sandbox bwrap``: where bubblewrap cannot run they skip, saying
why, except in CI (``CI=true``), where they fail.
"""
from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import nbformat
import numpy as np
import psutil
import pytest

from labutils import config
from grader import collect, markdown, runner, sandbox, settings, students
from grader import run as grading

REPO = Path(__file__).resolve().parents[1]
CIFAR = Path(os.environ.get("LAB5_SHARED") or REPO.parent / "shared") / "datasets" / "cifar10-subset" / "cifar-10-batches-py"
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


def repository(folder: Path, notebooks: dict[str, list[str]], course: tuple[str, ...] | None = None) -> Path:
    """A repository with its own copy of labutils and grader whose course (``course.NOTEBOOKS``) is ``course``
    (default: the notebooks given): when the grader runs from it, that is the course that decides what is graded.
    As in the lab, notebooks 02 and 03 need 01."""
    for package in ("labutils", "grader"):
        shutil.copytree(REPO / package, folder / package, ignore=shutil.ignore_patterns("__pycache__"))
    facts = folder / "labutils" / "course.py"
    stems = tuple(notebooks if course is None else course)
    facts.write_text(facts.read_text() + f"\nNOTEBOOKS = tuple(Notebook(s[:2], s, needs=('01',) if s[:2] in ('02', "
                     f"'03') else ()) for s in {stems!r})\n")
    (folder / "records").mkdir()
    for name, cells in notebooks.items():
        notebook(folder, name, *cells)
    return folder


def need_bwrap() -> None:
    """Skip where bubblewrap cannot run, saying why; in CI (CI=true) fail instead: the sandbox must be tested there."""
    problem = sandbox.bwrap_problem()
    if problem:
        (pytest.fail if os.environ.get("CI", "").lower() == "true" else pytest.skip)(f"needs bubblewrap: {problem}")


def run_grader(cwd: Path, *args: str, timeout: float = 180, cifar: Path = CIFAR) -> subprocess.CompletedProcess:
    """``python -m grader ARGS`` run from ``cwd`` (its labutils and grader are the course's), sandboxed with bwrap."""
    need_bwrap()
    env = {**os.environ, "LAB5_ROOT": str(cwd), "TF_CPP_MIN_LOG_LEVEL": "2"}
    env.pop("LAB5_PROFILE", None)
    if cifar.is_dir():  # the grader scores predictions against its own copy of the labels
        env["LAB5_CIFAR10"] = str(cifar)
    sandboxed = args if "--sandbox" in args else (*args, "--sandbox", "bwrap")
    return subprocess.run([sys.executable, "-m", "grader", *sandboxed], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=timeout)


def student_rows(report_md: str) -> dict[str, str]:
    """Each student's row of the report's first (student x notebook) table."""
    rows: dict[str, str] = {}
    for line in report_md.splitlines():
        if line.startswith("| "):
            rows.setdefault(line.split("|")[1].strip(), line)
    return rows


def by_notebook(summary: dict, run: int = 0) -> dict[str, dict]:
    return {nb["notebook"][:2]: nb for nb in summary["runs"][run]["notebooks"]}


def tree(folder: Path) -> dict[str, bytes]:
    """Every file under ``folder`` (symlinks and FIFOs by kind only): to show that nothing changed."""
    found = {}
    for path in sorted(folder.rglob("*")):
        kind = path.lstat().st_mode
        found[str(path.relative_to(folder))] = (path.read_bytes() if path.is_file() and not path.is_symlink()
                                                else oct(kind))
    return found


def processes_with(token: str) -> list[psutil.Process]:
    found = []
    for proc in psutil.process_iter(["cmdline"]):
        with contextlib.suppress(psutil.Error):
            if token in " ".join(proc.info["cmdline"] or []) and proc.status() != psutil.STATUS_ZOMBIE:
                found.append(proc)
    return found


def kill_all(procs: list[psutil.Process]) -> None:
    for proc in procs:
        with contextlib.suppress(psutil.Error):
            proc.kill()


def test_a_failing_notebook_is_reported_at_its_cell_and_the_others_pass(tmp_path):
    repo = repository(tmp_path / "lab", {
        "01_make": [MAKE],
        "02_use": [USE],
        "03_broken": ["total = 1", "raise RuntimeError(f'found {total} cat | expected 40')", "print('never')"],
        "04_free": ["print('free')", "import matplotlib.pyplot as plt\nplt.plot([0, 1], [1, 0]);"],
    })
    before = tree(repo)

    run = run_grader(repo, "--profile", "smoke", "-p", "scale", "0.5")

    assert run.returncode == 1
    summary = json.loads((repo / "graded" / "summary.json").read_text())
    assert summary["complete"] and summary["isolation"]["mode"] == "bwrap"
    nbs = by_notebook(summary)
    assert [nbs[n]["status"] for n in ("01", "02", "03", "04")] == ["passed", "passed", "failed", "passed"]
    broken = nbs["03"]
    assert broken["cell"] == 4 and broken["error"] == "RuntimeError"
    assert broken["message"] == "found 1 cat | expected 40"
    report_md = (repo / "graded" / "report.md").read_text()
    assert "03_broken.ipynb | failed at cell 4" in report_md and "RuntimeError: found 1 cat \\| expected 40" not in report_md
    assert "    RuntimeError: found 1 cat | expected 40" in report_md  # an indented code block, not a table cell
    assert "Profile: **smoke**" in report_md and "Python 3." in report_md and "GPU:" in report_md
    assert "Isolation: bwrap" in report_md

    # parameters reached the notebooks; without predictions files their numbers are self-reported only
    ram = next(row for row in nbs["02"]["metrics"] if row["model"] == "ram")
    assert ram["self_reported"]["roc_auc"] == pytest.approx(0.4) and ram["self_reported"]["test_examples"] == 400
    assert not ram["checked"] and "roc_auc" not in ram
    assert {row["model"] for row in nbs["02"]["metrics"]} == {"ram", "tfrecord"}
    assert nbs["01"]["results"] == ["records/results/01_make.json"]
    assert "| ram | 0.400 (self-reported) | 0.400 (self-reported) | 0.300 (self-reported) | 400 (self-reported) |" \
        in report_md

    # executed copies in graded/; the repository itself untouched (it ran in a private copy)
    executed = nbformat.read(repo / "graded" / "03_broken.ipynb", as_version=4)
    assert any(o.get("ename") == "RuntimeError" for c in executed.cells for o in c.get("outputs", []))
    # a grader reads the figures (loss curves, heatmaps) in the executed notebook, as a student saw them
    plotted = nbformat.read(repo / "graded" / "04_free.ipynb", as_version=4)
    assert any("image/png" in o.get("data", {}) for c in plotted.cells for o in c.get("outputs", []))
    assert tree(repo).keys() - {k for k in tree(repo) if k.startswith("graded")} == before.keys()
    assert all(tree(repo)[k] == v for k, v in before.items())
    assert "No such kernel" not in run.stdout + run.stderr
    for line in ("03_broken.ipynb: started", "03_broken.ipynb: failed at cell 4: RuntimeError"):
        assert line in run.stdout


def test_a_cifar10_source_reached_through_a_symlink_is_readable_in_the_sandbox(tmp_path, cifar_subset_dir):
    # A shared data folder linked into place (as CI's ../shared can be): bwrap binds the link's target.
    link = tmp_path / "shared"
    link.symlink_to(cifar_subset_dir.parent, target_is_directory=True)
    reads = ("import os\nfrom labutils import config\n"
             "assert os.path.getsize(os.path.join(config.CIFAR10_SOURCE, 'test_batch')) > 0, config.CIFAR10_SOURCE")
    course = repository(tmp_path / "course", {"01_reads": [reads]})
    run = run_grader(course, "--profile", "smoke", cifar=link / cifar_subset_dir.name)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    assert by_notebook(json.loads((course / "graded" / "summary.json").read_text()))["01"]["status"] == "passed"


def test_a_notebook_whose_input_failed_is_skipped(tmp_path):
    repo = repository(tmp_path / "lab", {
        "01_make": ["raise OSError('disk full')"], "02_use": [USE], "03_compare": [USE], "04_free": ["x = 1"]})

    run = run_grader(repo, "--profile", "smoke")

    assert run.returncode == 1
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

    assert run.returncode == 1
    dies = by_notebook(json.loads((repo / "graded" / "summary.json").read_text()))["04"]
    assert (dies["status"], dies["cell"], dies["error"]) == ("failed", 4, "DeadKernelError")


def test_a_notebook_past_the_timeout_is_stopped_and_the_run_goes_on(tmp_path):
    token = f"lab5-timeout-{tmp_path.name}"
    repo = repository(tmp_path / "lab", {
        # sum() over a range holds the GIL: the kernel cannot notice its parent is gone, it must be killed
        "05_slow": [f"import subprocess, sys\nsubprocess.Popen([sys.executable, '-c', 'import time; time.sleep(600)', "
                    f"{token!r}])", "sum(range(10**14))"],
        "06_after": [MAKE],
    })

    # 25 s: enough for 06 (papermill and a kernel start in ~5 s, ~15 s on a loaded 2-core machine)
    run = run_grader(repo, "--profile", "smoke", "--timeout", "25", timeout=180)

    left = processes_with(token)
    kill_all(left)
    assert run.returncode == 1
    nbs = by_notebook(json.loads((repo / "graded" / "summary.json").read_text()))
    slow = nbs["05"]
    assert slow["status"] == "timed out" and slow["cell"] == 4
    assert 25 <= slow["seconds"] < 45
    assert nbs["06"]["status"] == "passed"
    assert left == []  # the kernel's own child went with it
    assert "05_slow.ipynb | timed out at cell 4" in (repo / "graded" / "report.md").read_text()


def test_submissions_are_graded_in_parallel_each_in_its_own_copy(tmp_path):
    template = {"01_make": [MAKE], "02_use": [USE]}
    subs = tmp_path / "submissions"
    for student in ("alice", "bob", "carol"):
        repository(subs / student, template)
    notebook(subs / "bob", "02_use", USE, params="profile = 'full'\nscale = 1\nF1 = 0.7")  # bob's own model
    notebook(subs / "carol", "01_make", "raise ValueError('carol broke it')")
    (subs / "notes.txt").write_text("not a submission")
    before = tree(subs)

    course = repository(tmp_path / "course", {}, course=tuple(template))  # the grader's own copy
    run = run_grader(course, "--profile", "smoke", "--submissions", str(subs), "--jobs", "3")

    out = tmp_path / "submissions-graded"  # the default: beside the submissions, never inside
    assert run.returncode == 1  # carol failed
    summary = json.loads((out / "summary.json").read_text())
    runs = {r["name"]: r for r in summary["runs"]}
    assert set(runs) == {"alice", "bob", "carol"} and summary["jobs"] == 3 and summary["complete"]
    nbs = {name: {nb["notebook"][:2]: nb for nb in r["notebooks"]} for name, r in runs.items()}

    def f1(student: str, model: str = "ram") -> float:
        return next(row["self_reported"]["f1"] for row in nbs[student]["02"]["metrics"] if row["model"] == model)

    assert runs["alice"]["all_passed"] and runs["bob"]["all_passed"]
    assert (f1("alice"), f1("bob")) == (0.3, 0.7)  # bob's change shows in bob's row only
    assert f1("alice", "tfrecord") == f1("bob", "tfrecord")
    assert (nbs["carol"]["01"]["status"], nbs["carol"]["02"]["status"]) == ("failed", "skipped")
    assert [d["id"] for d in runs["alice"]["deliverables"]] == [1, 2, 3, 4]  # the lab's rubric, every student

    assert tree(subs) == before  # each ran in a private copy: no submission was written to
    for student in ("alice", "bob"):
        executed = nbformat.read(out / "students" / student / "02_use.ipynb", as_version=4)
        assert (out / "students" / student / "report.md").exists()
        assert executed.metadata.papermill["parameters"]["profile"] == "smoke"

    spans = {s: (dt.datetime.fromisoformat(nbs[s]["01"]["started"]), dt.datetime.fromisoformat(nbs[s]["01"]["ended"]))
             for s in ("alice", "bob")}
    assert spans["alice"][0] <= spans["bob"][1] and spans["bob"][0] <= spans["alice"][1]  # they overlapped

    report_md = (out / "report.md").read_text()
    rows = student_rows(report_md)
    assert "F1 0.300" in rows["alice"] and "F1 0.700" in rows["bob"] and "F1 0.700" not in rows["alice"]
    assert "self-reported" in rows["alice"]
    assert "skipped: needs 01" in rows["carol"] and "students/carol/01_make.ipynb: failed at cell 3" in report_md


# ---- a hostile student (issue 10 §1): every attack, graded with --sandbox bwrap -------------------------------

ATTACK_WRITES = """import json, os, pathlib, labutils
tried = {{}}
def attempt(name, action):
    try:
        action()
        tried[name] = "done"
    except Exception as err:
        tried[name] = type(err).__name__
victim = pathlib.Path({victim!r})
course = pathlib.Path(labutils.__file__).parent
spec = pathlib.Path(os.environ["JUPYTER_PATH"]) / "kernels" / "lab5-grader" / "kernel.json"
def poison():
    doc = json.loads(spec.read_text())
    doc["env"] = {{"POISONED": "1"}}
    spec.write_text(json.dumps(doc))
attempt("other submission", lambda: (victim / "notebooks" / "01_writes.ipynb").write_text("owned"))
attempt("other submission, new file", lambda: (victim / "owned.txt").write_text("owned"))
attempt("course code", lambda: (course / "config.py").open("a").write("OWNED = True"))
attempt("course code, new file", lambda: (course / "owned.py").write_text("OWNED = True"))
attempt("kernel spec", poison)
attempt("grader outputs", lambda: (pathlib.Path({out!r}) / "summary.json").write_text("{{}}"))
print("labutils:", labutils.__file__, "forged:", hasattr(labutils, "FORGED"))
print(json.dumps(tried))"""
# The forger's notebook: random test scores, saved honestly, and results JSON claiming an excellent model.
FORGE = """import numpy as np
from labutils import results
indices = np.arange(400)
scores = np.random.default_rng(0).random(400)
results.write_predictions("02_forge", "ram", indices, scores)
results.write({"notebook": "02_forge", "profile": profile, "test_examples": 400,
               "models": {"ram": {"metrics": {"roc_auc": 0.99, "pr_auc": 0.95, "f1": 0.9, "threshold": 0.5}}}})"""
FIFO = """import os
from labutils import config
config.RESULTS_DIR.mkdir(parents=True, exist_ok=True)
os.mkfifo(config.RESULTS_DIR / "x.json")"""
DAEMON = """import os, sys, time
if os.fork():
    os._exit(0)
os.setsid()
if os.fork():
    os._exit(0)
time.sleep(4)
open({summary!r}, "w").write('{{"passed": true, "complete": true}}')
time.sleep(600)"""
SPAM = """import os, sys, time
line = "spam " * 200 + "\\n"
end = time.time() + 8
while time.time() < end:
    sys.stdout.write(line * 50)
    os.write(2, (line * 50).encode())"""
# SIGTERM to each ancestor up to the grader: never further, so that even a broken sandbox
# cannot let this test signal the test runner or anything else on the machine.
ATTACK_COURSE = ("01_writes", "02_forge", "03_fifo", "04_daemon", "05_spam", "06_killer")  # the fake course: the attacker's notebooks
KILLER = """import os, signal, psutil
proc = psutil.Process().parent()
while proc is not None:
    os.kill(proc.pid, signal.SIGTERM)
    if "grader" in proc.cmdline()[1:3] and "-m" in proc.cmdline()[1:3]:
        break
    proc = proc.parent()"""
EXERCISE = ('raise NotImplementedError("make_example: build the tf.train.Example of one image with its four '
            'features.")')
POISON_CHECK = 'import os\nassert "POISONED" not in os.environ, "the kernel spec was poisoned"'


def test_a_hostile_submission_changes_nothing_outside_its_copy_and_its_report_is_honest(tmp_path, cifar_subset_dir):
    from sklearn.metrics import roc_auc_score

    from labutils import cifar10

    subs, course = tmp_path / "subs", repository(tmp_path / "course", {}, course=ATTACK_COURSE)
    out = subs / "graded"  # the README's Docker example: the outputs inside the submissions folder, from a run before
    out.mkdir(parents=True)
    token = f"lab5-daemon-{tmp_path.name}"
    victim = repository(subs / "b_victim", {"01_writes": [MAKE, POISON_CHECK]})
    mallory = repository(subs / "a_mallory", {
        "01_writes": [ATTACK_WRITES.format(victim=str(victim), out=str(out))],
        "02_forge": [FORGE],
        "03_fifo": [FIFO],
        "04_daemon": [f"import subprocess, sys\nsubprocess.run([sys.executable, '-c', "
                      f"{DAEMON.format(summary=str(out / 'summary.json'))!r}, {token!r}])"],
        "05_spam": [SPAM],
        "06_killer": [KILLER],
    })
    with open(mallory / "labutils" / "__init__.py", "a") as init:  # the student's own labutils, forged
        init.write("\nFORGED = True\n")
    (mallory / "notebooks" / "labutils").mkdir()
    (mallory / "notebooks" / "labutils" / "__init__.py").write_text("FORGED = True\n")
    os.mkfifo(mallory / "records" / "pipe")  # in the submission itself: never opened when copying
    repository(subs / "summary.json", {"01_writes": [MAKE]})  # a student named like a report file
    repository(subs / "c_exercise", {"01_writes": ["x = 1", EXERCISE]})
    odd = "<img src=x onerror=alert(1)>| eve\nnext"
    repository(subs / odd, {"01_writes": [MAKE]})
    (subs / "linky").symlink_to(victim)  # a submission that is a symlink
    (subs / "old-graded").mkdir()
    (subs / "old-graded" / students.MARKER).write_text("a previous run's outputs")
    before = {"victim": tree(victim), "course": tree(course / "labutils"), "mallory": tree(mallory)}

    run = run_grader(course, "--profile", "smoke", "--submissions", str(subs), "--out", str(out), "--jobs", "1",
                     timeout=600)

    left = processes_with(token)
    kill_all(left)
    assert left == []  # the double-forked daemon died with the sandbox
    assert run.returncode == 1, run.stdout[-3000:] + run.stderr[-3000:]
    summary = json.loads((out / "summary.json").read_text())  # still the grader's: complete, not "passed"
    assert summary["complete"] and not summary["passed"] and summary["isolation"]["mode"] == "bwrap"
    runs = {r["name"]: r for r in summary["runs"]}
    assert set(runs) == {"a_mallory", "b_victim", "summary.json", "c_exercise", odd}
    assert {r["name"]: r["reason"] for r in summary["not_graded"]}.keys() == {"graded", "linky", "old-graded"}

    # nothing outside the attacker's private copy changed: other students, course code, its own folder
    assert tree(victim) == before["victim"] and tree(course / "labutils") == before["course"]
    assert tree(mallory) == before["mallory"]
    nbs = {nb["notebook"][:2]: nb for nb in runs["a_mallory"]["notebooks"]}
    executed = nbformat.read(out / "students" / "a_mallory" / "01_writes.ipynb", as_version=4)
    printed = "".join(o.get("text", "") for c in executed.cells for o in c.get("outputs", []))
    assert f"labutils: {course / 'labutils' / '__init__.py'} forged: False" in printed  # the course's package
    tried = json.loads(printed.strip().splitlines()[-1])
    assert set(tried.values()) <= {"FileNotFoundError", "OSError", "PermissionError"}, tried
    assert runs["b_victim"]["notebooks"][0]["status"] == "passed"  # its kernel saw no poisoned spec

    # metrics: the grader's own, and the forged self-report called out
    row = nbs["02"]["metrics"][0]
    labels = cifar10.cat_labels(cifar10.load(cifar_subset_dir).y_test)[:400]
    scores = np.random.default_rng(0).random(400)
    # the CSV keeps 9 significant digits: AUCs agree to float64 summation error
    assert row["roc_auc"] == pytest.approx(roc_auc_score(labels, scores), abs=1e-9)
    assert row["checked"] and row["test_examples"] == 400 and row["self_reported"]["roc_auc"] == 0.99
    assert any(m.startswith("roc_auc 0.9900 stated") for m in row["mismatch"])
    report_md = (out / "report.md").read_text()
    mallory_row = next(line for line in report_md.splitlines() if line.startswith("| a\\_mallory") or
                       line.startswith("| a_mallory"))
    assert f"ROC-AUC {row['roc_auc']:.3f}" in mallory_row and "MISMATCH with self-report" in mallory_row
    assert "ROC-AUC 0.990" not in mallory_row

    # a FIFO among the results is reported, never waited on; the one in the submission was not copied
    fifo = next(r for r in nbs["03"]["metrics"] if r.get("source") == "x.json")
    assert nbs["03"]["status"] == "passed" and "not a regular file" in fifo["unreadable"]
    assert runs["a_mallory"]["left_out"] == ["records/pipe"]

    # spam: log and executed notebook capped, with a note
    spam = nbs["05"]
    assert spam["status"] == "passed" and spam["seconds"] < 120, spam
    assert (out / "students" / "a_mallory" / "logs" / "05_spam.log").stat().st_size <= collect.OUTPUT_CAP + 1000
    assert (out / "students" / "a_mallory" / "05_spam.ipynb").stat().st_size <= collect.OUTPUT_CAP
    assert any("log truncated" in n for n in spam["notes"])
    assert any("dropped while it ran" in n for n in spam["notes"])
    kept = nbformat.read(out / "students" / "a_mallory" / "05_spam.ipynb", as_version=4)
    assert kept.cells[-1].outputs[-1].text.startswith("[the grader dropped this notebook's further output")
    assert nbs["06"]["status"] != "passed"  # its SIGTERMs reached only its own sandbox

    # the exercise left undone: its name and message, not a traceback
    exercise = runs["c_exercise"]["notebooks"][0]
    assert (exercise["status"], exercise["error"]) == ("failed", "NotImplementedError")
    assert exercise["message"].startswith("make_example: build the tf.train.Example")
    assert "NotImplementedError: make_example: build" in report_md and "Traceback" not in report_md

    # odd names: graded like anyone, escaped in the report, their outputs in folders of their own
    passed_01 = lambda name: runs[name]["notebooks"][0]["status"] == "passed"  # they hold 01 only
    assert passed_01("summary.json") and (out / "students" / "summary.json" / "report.md").is_file()
    assert passed_01(odd) and "<img" not in report_md
    assert any(line.startswith("| &lt;img src=x onerror=alert(1)&gt;\\| eve next |") for line in report_md.splitlines())
    assert "linky" in report_md and "a symlink, not followed" in report_md


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_a_stopped_grader_reports_the_running_notebook_interrupted(tmp_path, signum):
    subs, course = tmp_path / "subs", repository(tmp_path / "course", {}, course=("01_wait",))
    token = f"lab5-stopped-{tmp_path.name}"
    for student in ("a_first", "b_second"):
        repository(subs / student, {"01_wait": [f"import subprocess, sys, time\nsubprocess.Popen([sys.executable, "
                                                f"'-c', 'import time; time.sleep(600)', {token!r}])\ntime.sleep(600)"]})
    out = tmp_path / "out"
    out.mkdir()
    (out / "summary.json").write_text(json.dumps({"complete": True, "passed": True}))  # a previous run's
    need_bwrap()
    env = {**os.environ, "LAB5_ROOT": str(course)}
    grader = subprocess.Popen([sys.executable, "-m", "grader", "--profile", "smoke", "--submissions",
                               str(subs), "--out", str(out), "--jobs", "1", "--sandbox", "bwrap"],
                              cwd=course, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        for line in grader.stdout:
            if "a_first/01_wait.ipynb: started" in line:
                break
        deadline = dt.datetime.now() + dt.timedelta(seconds=60)
        while not processes_with(token) and dt.datetime.now() < deadline:  # the cell is running
            psutil.wait_procs([], timeout=0.5)
        grader.send_signal(signum)
        rest = grader.communicate(timeout=120)[0]
    finally:
        if grader.poll() is None:
            grader.kill()
    left = processes_with(token)
    kill_all(left)

    assert grader.returncode == 130, rest
    assert left == []
    summary = json.loads((out / "summary.json").read_text())
    assert not summary["complete"] and not summary["passed"] and summary["state"].startswith("interrupted")
    runs = {r["name"]: r for r in summary["runs"]}
    assert runs["a_first"]["state"] == "interrupted" and runs["a_first"]["notebooks"][0]["status"] == "interrupted"
    assert runs["b_second"]["state"].startswith("not graded")
    report_md = (out / "report.md").read_text()
    assert "INCOMPLETE" in report_md and "interrupted" in report_md and "| passed" not in report_md


def test_without_a_sandbox_the_report_and_terminal_say_so(tmp_path):
    repo = repository(tmp_path / "lab", {"01_free": ["x = 1"]})

    run = run_grader(repo, "--profile", "smoke", "--sandbox", "none")

    assert run.returncode == 0
    summary = json.loads((repo / "graded" / "summary.json").read_text())
    assert summary["isolation"]["mode"] == "none" and "UNISOLATED" in summary["isolation"]["statement"]
    assert "UNISOLATED" in (repo / "graded" / "report.md").read_text() and "WARNING: isolation" in run.stdout


# ---- the parts, without notebooks -----------------------------------------------------------------------

def test_metrics_stated_in_any_shape_are_collected_as_self_reported(tmp_path):
    results = tmp_path / "records" / "results"
    results.mkdir(parents=True)
    (results / "old.json").write_text(json.dumps({"metrics": {"roc_auc": 0.1}}))
    before = collect.snapshot(results)
    (results / "03_transfer.json").write_text(json.dumps({
        "profile": "smoke", "test_examples": 846, "backbone": "resnet50",
        "metrics": {"roc_auc": 0.93, "pr_auc": 0.7, "f1": float("nan")},
        "phases": {"head": {"metrics": {"f1": 0.5}}, "finetune": {"roc_auc": 0.95, "test_examples": 100}},
        "history": [1, 2, 3], "note": "text"}))
    (results / "broken.json").write_text("{not json")

    files, rows = collect.notebook_results(results, before, tmp_path, "03_transfer", "smoke")

    assert files == ["records/results/03_transfer.json", "records/results/broken.json"]  # not the stale one
    assert rows[0] == {"source": "broken.json", "unreadable": rows[0]["unreadable"]}
    assert rows[0]["unreadable"].startswith("JSONDecodeError")
    stated = {row["model"]: row for row in rows[1:]}
    assert all(not row["checked"] and row["problem"] == "no predictions file" for row in rows[1:])
    assert stated["resnet50"]["self_reported"] == {"roc_auc": 0.93, "pr_auc": 0.7, "test_examples": 846}  # NaN left out
    assert stated["phases/head"]["self_reported"] == {"f1": 0.5, "test_examples": 846}
    assert stated["phases/finetune"]["self_reported"] == {"roc_auc": 0.95, "test_examples": 100}
    assert collect.key_metrics([1, 2], "list.json") == [] and collect.key_metrics({"f1": True}, "b.json") == []


def test_reading_is_bounded_regular_files_only(tmp_path):
    (tmp_path / "big.json").write_bytes(b"x" * 101)
    (tmp_path / "ok.json").write_text("{}")
    (tmp_path / "link.json").symlink_to(tmp_path / "ok.json")
    os.mkfifo(tmp_path / "fifo.json")  # opening it for a blocking read would hang forever

    assert collect.read_bounded(tmp_path / "ok.json", 100) == b"{}"
    for name, why in (("big.json", "101 bytes, over"), ("link.json", "a symlink"), ("fifo.json", "not a regular file"),
                      ("missing.json", "cannot open")):
        with pytest.raises(collect.Unreadable, match=why):
            collect.read_bounded(tmp_path / name, 100)


def test_grader_metrics_come_from_predictions_and_true_labels():
    labels = np.array([0, 1, 0, 1, 0, 0])
    indices, scores = collect.parse_predictions(b"index,score\n5,0.1\n1,0.9\n0,0.2\n3,0.4\n2,0.5\n")

    row = collect.score_predictions(indices, scores, labels, threshold=0.45)

    # labels of 5,1,0,3,2 are 0,1,0,1,0; scores 0.1,0.9,0.2,0.4,0.5: 5 of the 6 (cat, other) pairs ranked right
    assert row["roc_auc"] == pytest.approx(5 / 6, abs=1e-12) and row["test_examples"] == 5
    assert row["f1"] == pytest.approx(2 * 0.5 * 0.5 / (0.5 + 0.5))  # predicted cats 1 and 2: one right
    assert row["problem"] == "covers 5 of the 6 test images"
    assert collect.mismatches(row, {"roc_auc": 5 / 6 + 1e-5, "test_examples": 5}) == []  # below the tolerance
    assert collect.mismatches(row, {"roc_auc": 0.99, "test_examples": 6}) == [
        "roc_auc 0.9900 stated, 0.8333 computed", "test_examples 6 stated, 5 found"]
    for bad, why in ((b"index,score\n1,0.5\n1,0.6\n", "listed twice"), (b"index,score\n9,0.5\n0,0.1\n", "not among"),
                     (b"idx,p\n1,0.5\n", "header"), (b"index,score\n1;0.5\n", "line 2")):
        with pytest.raises(ValueError, match=why):
            collect.score_predictions(*collect.parse_predictions(bad), labels, None)


def test_report_cells_are_inert_and_odd_student_names_get_safe_folders():
    assert markdown.cell("a|b\n<script>x</script> [link](http://x) `code`") == \
        "a\\|b &lt;script&gt;x&lt;/script&gt; \\[link\\](http://x) \\`code\\`"
    assert students.folder_name("alice") == "alice" and students.folder_name("summary.json") == "summary.json"
    odd = students.folder_name("../x\ny")
    assert "/" not in odd and "\n" not in odd and not odd.startswith(".") and odd != students.folder_name("../x\nz")


def test_parameter_values_are_typed_like_papermills():
    assert [grading.parse_value(v) for v in ("3", "0.5", "true", "False", "None", "[1, 2]", "resnet50", "1e-3")] \
        == [3, 0.5, True, False, None, [1, 2], "resnet50", 0.001]


def test_default_jobs_fit_the_machine():
    cpus, memory_gb = runner.machine()
    jobs = runner.default_jobs("full")
    assert 1 <= jobs <= max(1, cpus // 2)
    assert jobs == 1 or jobs * settings.JOB_MEMORY_GB["full"] <= memory_gb


def test_the_sandbox_choice_says_what_isolation_there_is(monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))  # no bwrap on this PATH
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    with pytest.raises(sandbox.SandboxError, match="bwrap is not installed .*apt-get install bubblewrap"):
        sandbox.choose("bwrap")
    auto = sandbox.choose("auto")
    assert auto.mode == "none" and "UNISOLATED (bwrap is not installed" in auto.statement
    monkeypatch.setenv("KUBERNETES_SERVICE_HOST", "10.0.0.1")
    assert "inside a Kubernetes pod: that is the only boundary" in sandbox.choose("none").statement


def test_the_course_decides_which_notebooks_are_graded(tmp_path):
    """Two submissions holding only 01 are not "2 of 2 passed": each row counts the course's four notebooks."""
    course_list = ("01_make", "02_use", "03_more", "04_last")
    course = repository(tmp_path / "course", {}, course=course_list)
    subs = tmp_path / "subs"
    repository(subs / "alice", {"01_make": [MAKE]})
    repository(subs / "bob", {"01_make": [MAKE], "02_use_v2": [USE], "99_extra": ["x = 1"]})  # renamed and extra
    repository(subs / "carol", {"02_use": [USE]})  # 01 missing, so 02 cannot run

    run = run_grader(course, "--profile", "smoke", "--submissions", str(subs), "--jobs", "1")

    assert run.returncode == 1
    summary = json.loads((tmp_path / "subs-graded" / "summary.json").read_text())
    runs = {r["name"]: r for r in summary["runs"]}
    statuses = {name: [(nb["notebook"], nb["status"]) for nb in r["notebooks"]] for name, r in runs.items()}
    assert statuses["alice"] == [("01_make.ipynb", "passed"), ("02_use.ipynb", "missing"),
                                 ("03_more.ipynb", "missing"), ("04_last.ipynb", "missing")]
    assert statuses["bob"] == statuses["alice"]  # its renamed 02 and extra notebook were not run
    assert sorted(runs["bob"]["left_out"]) == ["notebooks/02_use_v2.ipynb (not a course notebook: listed, not run)",
                                               "notebooks/99_extra.ipynb (not a course notebook: listed, not run)"]
    carol = {nb["notebook"][:2]: nb for nb in runs["carol"]["notebooks"]}
    assert carol["01"]["status"] == "missing" and (carol["02"]["status"], carol["02"]["reason"]) == ("skipped", "needs 01")
    assert not any(r["all_passed"] for r in runs.values())
    report_md = (tmp_path / "subs-graded" / "report.md").read_text()
    assert "0 of 3 passed every notebook" in report_md
    rows = student_rows(report_md)
    assert rows["alice"].rstrip().endswith("| 1/4 |") and rows["carol"].rstrip().endswith("| 0/4 |")
    assert "99\\_extra" in report_md or "99_extra" in report_md


def test_make_lab_without_a_profile_chooses_laptop_on_a_machine_without_a_gpu_and_says_why(tmp_path, monkeypatch):
    """``make lab`` as a student types it; LAB5_ROOT points at a folder without the course's notebooks,
    so the grader reports them missing and stops at once: what is tested is the profile it chose."""
    monkeypatch.delenv("LAB5_PROFILE", raising=False)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "-1")  # no GPU, even on a machine that has one
    assert config.profile(None).name == "laptop"
    assert config.resolve_profile(None)[1].startswith("no GPU found")
    monkeypatch.setenv("LAB5_PROFILE", "smoke")
    assert config.resolve_profile(None) == (config.PROFILES["smoke"], "from $LAB5_PROFILE")
    monkeypatch.delenv("LAB5_PROFILE")
    (tmp_path / "notebooks").mkdir()
    env = {**os.environ, "LAB5_ROOT": str(tmp_path)}
    run = subprocess.run(["make", "-s", "lab", f"VENV={sys.prefix}"], cwd=REPO, env=env, capture_output=True,
                         text=True, timeout=300)
    assert run.stdout.splitlines()[0].endswith("profile laptop: no GPU found; set LAB5_PROFILE or pass a profile "
                                                "to choose"), run.stdout[:2000] + run.stderr[-2000:]
    summary = json.loads((tmp_path / "graded" / "summary.json").read_text())
    assert summary["profile"] == "laptop" and summary["profile_reason"].startswith("no GPU found")
    assert all(nb["status"] == "missing" for nb in summary["runs"][0]["notebooks"])
    assert "**laptop** (no GPU found" in (tmp_path / "graded" / "report.md").read_text()
