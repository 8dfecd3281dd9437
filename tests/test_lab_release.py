"""The lab as students do it and graders grade it, on the real notebooks (smoke profile, real data):
the student release stops at each notebook's first exercise naming the task and holds no solution line;
the solutions pass their self-checks and a broken one fails with a message; the grader's rubric says
"not met" for unedited discussion cells, "met" once they are written, and "not implemented" for stubs."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from labutils import config, course
from grader import release, sandbox

REPO = Path(__file__).resolve().parents[1]
SHIPPED = ("labutils", "notebooks", "img_in", "Makefile", "requirements.txt", "pyproject.toml", "README.md")
WORDS = ("The records pipeline and the arrays gave models within the seed spread of each other, so the "
         "difference is noise rather than a property of the input path; streaming shards costs a little "
         "time per epoch here, but would pay off when the data outgrow memory or live on a network disk, "
         "and the histories show the loss falling steadily once batch normalization was added.")


@pytest.fixture(autouse=True)
def cifar(cifar_subset_dir, monkeypatch):
    """Every notebook and grader here reads the shared CIFAR-10 subset."""
    monkeypatch.setenv("LAB5_CIFAR10", str(cifar_subset_dir))


def lab_env(root: Path | None = None) -> dict[str, str]:
    env = {**os.environ, "LAB5_PROFILE": "smoke", "TF_CPP_MIN_LOG_LEVEL": "2"}
    if root is not None:
        env["LAB5_ROOT"] = str(root)
    return env


def course_copy(target: Path) -> Path:
    """A student's copy of the course as handed back with every solution (no outputs of earlier runs)."""
    for entry in SHIPPED:
        source = REPO / entry
        if source.is_dir():
            shutil.copytree(source, target / entry, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
        else:
            shutil.copy2(source, target / entry)
    for folder in ("records", "img_out"):
        (target / folder).mkdir()
    return target


def write_discussions(root: Path) -> None:
    for path in sorted((root / "notebooks").glob("*.ipynb")):
        nb = nbformat.read(path, as_version=4)
        for cell in nb.cells:
            if "deliverable" in cell.metadata.get("tags", []):
                cell.source += "\n\n" + WORDS
        nbformat.write(nb, path)


def solution_lines(nb: nbformat.NotebookNode) -> set[str]:
    """The lines only solution regions hold (a line also written elsewhere in the notebook is no secret)."""
    inside, outside = set(), set()
    for cell in nb.cells:
        region = False
        for line in cell.source.splitlines():
            if line.strip().startswith(release.BEGIN):
                region = True
            elif line.strip().startswith(release.END):
                region = False
            else:
                (inside if region else outside).add(line.strip())
    return {line for line in inside - outside if len(line) > 12}


def test_every_course_notebook_has_exercises_and_the_release_holds_no_solution(tmp_path):
    made = release.release(tmp_path / "release")
    assert set(made) == {nb.name for nb in course.NOTEBOOKS} and all(made.values())
    for name in (nb.name for nb in course.NOTEBOOKS):
        solved = nbformat.read(REPO / "notebooks" / name, as_version=4)
        student = nbformat.read(tmp_path / "release" / "notebooks" / name, as_version=4)
        text = "\n".join(cell.source for cell in student.cells)
        lines = {line.strip() for line in text.splitlines()}
        assert solution_lines(solved) and not solution_lines(solved) & lines, name
        assert text.count("# YOUR CODE HERE") == len(made[name])
        assert [c.source for c in solved.cells if c.cell_type == "markdown"] == \
               [c.source for c in student.cells if c.cell_type == "markdown"]  # everything else unchanged
        tags = [c for c in solved.cells if course.DISCUSSION_TAG in c.metadata.get("tags", [])]
        assert len(tags) == (0 if name.startswith("01") else 1), name


def test_the_release_holds_the_lab_and_none_of_the_course_tools(tmp_path):
    release.release(tmp_path / "release")
    root = tmp_path / "release"
    top = {p.name for p in root.iterdir()}
    assert top == {"labutils", "notebooks", "img_in", "records", "img_out", "requirements.txt", "pyproject.toml",
                   "README.md", "Makefile"}, top
    assert not list(root.rglob("grade*")) and not list(root.rglob("test_*.py"))
    readme, makefile = (root / "README.md").read_text(), (root / "Makefile").read_text()
    for tool in ("grader", "pytest", "benchmarks", "deploy", "tests/", "release", "Dockerfile", "requirements-dev"):
        assert tool not in readme and tool not in makefile, tool
    # The student's README names the course's notebooks and exercises as course.py has them.
    for nb in course.NOTEBOOKS:
        assert f"`{nb.name}`" in readme and all(f"`{name}`" in readme for name in nb.exercises), nb.name
    # Its Makefile works on what the release holds: the venv target names only shipped files.
    assert "requirements.txt" in makefile and "jupyter lab notebooks/" in makefile


@pytest.mark.parametrize("name", ["02_lab4_retrain.ipynb", "03_resnet_transfer.ipynb"])
def test_released_notebook_stops_at_its_first_exercise(name, tmp_path, smoke_records):
    made = release.release(tmp_path / "release")
    root = tmp_path / "release"
    shutil.copytree(smoke_records, root / "records", dirs_exist_ok=True)
    out = tmp_path / name
    run = subprocess.run([sys.executable, "-m", "papermill", str(root / "notebooks" / name), str(out), "-k", "python3",
                          "--cwd", str(root / "notebooks")], env=lab_env(root), capture_output=True, text=True,
                         timeout=600)
    assert run.returncode != 0
    errors = [o for c in nbformat.read(out, as_version=4).cells for o in c.get("outputs", [])
              if o.get("output_type") == "error"]
    assert errors[0]["ename"] == "NotImplementedError"
    assert errors[0]["evalue"].startswith(f"{made[name][0]}: ")


def test_a_broken_parse_function_fails_its_self_check_saying_what_differs(tmp_path):
    root = course_copy(tmp_path / "student")
    path = root / "notebooks" / "01_tfrecords.ipynb"
    nb = nbformat.read(path, as_version=4)
    cell = next(c for c in nb.cells if "def parse_batch" in c.source)
    assert "(-1, 32, 32, 3))" in cell.source
    cell.source = cell.source.replace("(-1, 32, 32, 3))", "(-1, 3, 32, 32)), (0, 2, 3, 1))").replace(
        "images = tf.reshape(", "images = tf.transpose(tf.reshape(")
    nbformat.write(nb, path)
    out = tmp_path / "executed.ipynb"
    run = subprocess.run([sys.executable, "-m", "papermill", str(path), str(out), "-k", "python3",
                          "--cwd", str(root / "notebooks")], env=lab_env(root), capture_output=True, text=True,
                         timeout=600)
    assert run.returncode != 0
    error = next(o for c in nbformat.read(out, as_version=4).cells for o in c.get("outputs", [])
                 if o.get("output_type") == "error")
    assert error["ename"] == "SelfCheckError" and "batch element 0: pixels differ" in error["evalue"]


def test_the_grader_scores_the_deliverables(tmp_path):
    problem = sandbox.bwrap_problem()
    if problem:
        (pytest.fail if os.environ.get("CI", "").lower() == "true" else pytest.skip)(f"needs bubblewrap: {problem}")
    subs = tmp_path / "subs"
    course_copy(subs / "a_unedited")
    write_discussions(course_copy(subs / "b_edited"))
    release.release(subs / "c_release")
    out = tmp_path / "graded"
    env = lab_env()
    env.pop("LAB5_PROFILE")
    run = subprocess.run([sys.executable, "-m", "grader", "--profile", "smoke", "--submissions", str(subs),
                          "--out", str(out), "--sandbox", "bwrap", "--jobs", "1"], cwd=REPO, env=env,
                         capture_output=True, text=True, timeout=1200)
    assert run.returncode == 1, run.stdout[-3000:]
    summary = json.loads((out / "summary.json").read_text())
    rubric = {r["name"]: {d["id"]: d for d in r["deliverables"]} for r in summary["runs"]}
    status = {name: [rubric[name][n]["status"] for n in (1, 2, 3, 4)] for name in rubric}
    assert status["b_edited"] == ["met"] * 4, rubric["b_edited"]
    assert status["a_unedited"] == ["not met", "met", "not met", "not met"], rubric["a_unedited"]
    assert all("unedited template" in rubric["a_unedited"][n]["evidence"] for n in (1, 3, 4))
    assert all(d["status"] == "not met" and "not implemented: " in d["evidence"] for d in rubric["c_release"].values())
    assert rubric["c_release"][4]["evidence"].startswith("not implemented: make_gradcam_heatmap")
    report_md = (out / "report.md").read_text()
    assert "## Deliverables" in report_md and "not implemented: make\\_example" in report_md.replace("make_example", "make\\_example")
    assert "Traceback" not in report_md
