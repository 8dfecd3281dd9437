"""The lab as students do it and graders grade it, on the real notebooks (smoke profile, real data):
the student release stops at each notebook's first exercise naming the task and holds no solution line;
the solutions pass their self-checks and a broken one fails with a message; the grader's rubric says
"not met" for unedited discussion cells, "met" once they are written, and "not implemented" for stubs."""
from __future__ import annotations

import csv
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


def write_discussions(root: Path, words: int | None = None) -> None:
    """Add a written answer under every discussion cell's prompts (the first ``words`` words of ``WORDS``)."""
    text = " ".join(WORDS.split()[:words])
    for path in sorted((root / "notebooks").glob("*.ipynb")):
        nb = nbformat.read(path, as_version=4)
        for cell in nb.cells:
            if "deliverable" in cell.metadata.get("tags", []):
                cell.source += "\n\n" + text
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


def edit_cell(root: Path, notebook: str, marker: str, *replacements: tuple[str, str]) -> None:
    """Replace text in the code cell of ``notebook`` that holds ``marker`` (each replacement must apply)."""
    path = root / "notebooks" / notebook
    nb = nbformat.read(path, as_version=4)
    cell = next(c for c in nb.cells if marker in c.source)
    for old, new in replacements:
        assert old in cell.source, old
        cell.source = cell.source.replace(old, new)
    nbformat.write(nb, path)


# A parse_batch that reads the pixels channels-first (its self-check fails, 01 raises at its demo cell).
CHANNELS_FIRST = (("(-1, 32, 32, 3))", "(-1, 3, 32, 32)), (0, 2, 3, 1))"),
                  ("images = tf.reshape(", "images = tf.transpose(tf.reshape("))
# A make_example that returns the course reference's bytes: passes its self-check, not the student's work.
REFERENCE = (("return tf.train.Example(features=tf.train.Features(feature=feature))",
              "return tf.train.Example.FromString(tfrecords.serialize(image, label, class_id, index))"),)


@pytest.fixture(scope="session")
def graded_class(tmp_path_factory) -> Path:
    """One real class graded once (smoke, bwrap), read by every test below: discussions written; a wrong
    parse_batch; a make_example calling the course's reference; the stripped release."""
    problem = sandbox.bwrap_problem()
    if problem:
        (pytest.fail if os.environ.get("CI", "").lower() == "true" else pytest.skip)(f"needs bubblewrap: {problem}")
    tmp_path = tmp_path_factory.mktemp("class")
    subs = tmp_path / "subs"
    write_discussions(course_copy(subs / "b_edited"))
    write_discussions(course_copy(subs / "d_parse_wrong"))
    edit_cell(subs / "d_parse_wrong", course.TFRECORDS_NB.name, "def parse_batch", *CHANNELS_FIRST)
    write_discussions(course_copy(subs / "e_reference"))
    edit_cell(subs / "e_reference", course.TFRECORDS_NB.name, "def make_example", *REFERENCE)
    release.release(subs / "c_release")
    out = tmp_path / "graded"
    env = lab_env()
    env.pop("LAB5_PROFILE")
    env["LAB5_CIFAR10"] = str(Path(os.environ.get("LAB5_SHARED") or REPO.parent / "shared") / "datasets" /
                              "cifar10-subset" / "cifar-10-batches-py")
    run = subprocess.run([sys.executable, "-m", "grader", "--profile", "smoke", "--submissions", str(subs),
                          "--out", str(out), "--sandbox", "bwrap", "--jobs", "2"], cwd=REPO, env=env,
                         capture_output=True, text=True, timeout=2400)
    assert run.returncode == 1, run.stdout[-3000:] + run.stderr[-3000:]
    return out


def test_the_grader_scores_the_deliverables(graded_class):
    out = graded_class
    summary = json.loads((out / "summary.json").read_text())
    rubric = {r["name"]: {d["id"]: d for d in r["deliverables"]} for r in summary["runs"]}
    status = {name: [rubric[name][n]["status"] for n in (1, 2, 3, 4)] for name in rubric}
    assert status["b_edited"] == ["met"] * 4, rubric["b_edited"]
    assert all(d["status"] == "not met" and "not implemented: " in d["evidence"] for d in rubric["c_release"].values())
    assert rubric["c_release"][4]["evidence"].startswith("not implemented: make_gradcam_heatmap")
    report_md = (out / "report.md").read_text()
    # 01 wrote its records with the course's writer, so 02 ran and stopped at its own exercise
    assert "## Deliverables" in report_md and "not implemented: training\\_dataset" in report_md.replace("training_dataset", "training\\_dataset")
    assert "Traceback" not in report_md


def test_each_exercise_is_scored_on_its_own(graded_class):
    """All automatic points for the first; a wrong parse_batch costs that exercise only (01 still failed, the
    notebooks after it ran on the course writer's records); the reference's bytes cost make_example."""
    from grader import rubric as points

    summary = json.loads((graded_class / "summary.json").read_text())
    runs = {r["name"]: r for r in summary["runs"]}
    book = {row["student"]: row for row in csv.DictReader(open(graded_class / "gradebook.csv"))}
    names = points.exercise_names()
    assert all(book["b_edited"][n] == f"{points.maximum(n):g}" for n in names), book["b_edited"]
    assert book["b_edited"]["D2"] == f"{points.maximum(2):g}" and book["b_edited"]["needs_manual"] == "true"
    wrong = {e["name"]: e for e in runs["d_parse_wrong"]["exercises"]}
    assert book["d_parse_wrong"]["parse_batch"] == "0" and wrong["parse_batch"]["status"] == "failed"
    assert "batch element 0: pixels differ" in wrong["parse_batch"]["evidence"]
    assert all(book["d_parse_wrong"][n] == f"{points.maximum(n):g}" for n in names if n != "parse_batch")
    nbs = {nb["notebook"][:2]: nb["status"] for nb in runs["d_parse_wrong"]["notebooks"]}
    assert nbs == {"01": "failed", "02": "passed", "03": "passed", "04": "passed"}, nbs
    assert [d["status"] for d in runs["d_parse_wrong"]["deliverables"]] == ["met"] * 4
    ref = {e["name"]: e for e in runs["e_reference"]["exercises"]}
    assert book["e_reference"]["make_example"] == "0" and ref["make_example"]["status"] == "passed"
    assert "labutils.tfrecords.serialize" in ref["make_example"]["evidence"]
    assert all(book["e_reference"][n] == f"{points.maximum(n):g}" for n in names if n != "make_example")
    assert all(book["c_release"][n] == "0" for n in names) and book["c_release"]["total"] == "0"
    manual = list(csv.DictReader(open(graded_class / "manual.csv")))
    assert {(r["student"], r["deliverable"]) for r in manual} == {
        (s, str(d)) for s in ("b_edited", "d_parse_wrong", "e_reference") for d in (1, 3, 4)}
    assert all(r["points"] == "" for r in manual)


def test_the_instructor_fills_in_the_sheet_and_finalizes(graded_class, tmp_path):
    out = tmp_path / "graded"
    shutil.copytree(graded_class, out)
    sheet = out / "manual.csv"
    rows = list(csv.DictReader(open(sheet)))
    for row in rows:
        row["points"], row["comment"] = ("10", "clear <b>and</b> right") if row["student"] == "b_edited" else ("", "")
    write_sheet(sheet, rows)
    assert finalize(out).returncode == 0
    book = {row["student"]: row for row in csv.DictReader(open(out / "gradebook.csv"))}
    auto = sum(float(v) for k, v in book["b_edited"].items() if k not in ("student", "D1", "D3", "D4", "total",
                                                                         "maximum", "needs_manual"))
    assert book["b_edited"]["needs_manual"] == "false" and float(book["b_edited"]["total"]) == auto + 30
    assert book["e_reference"]["needs_manual"] == "true" and book["b_edited"]["maximum"] == "100"
    page = (out / "feedback" / "b_edited.html").read_text()
    assert "clear &lt;b&gt;and&lt;/b&gt; right" in page and "data:image/jpeg;base64," in page
    feedback = (out / "feedback" / "d_parse_wrong.html").read_text()
    assert "batch element 0: pixels differ" in feedback
    rows[0]["points"] = "99"
    write_sheet(sheet, rows)
    refused = finalize(out)
    assert refused.returncode == 1 and "manual.csv row 2, column points" in refused.stderr, refused.stderr


def test_the_class_pages_open_in_a_browser(graded_class):
    from browser import open_page

    summary = json.loads((graded_class / "summary.json").read_text())
    written = next(d["text"] for r in summary["runs"] if r["name"] == "b_edited" for d in r["discussions"]
                   if d["deliverable"] == 4)
    seen = open_page(graded_class / "discussions.html")
    assert seen["images"] and all(width > 0 for width in seen["images"]), seen["images"]
    assert " ".join(written.split()) in " ".join(seen["text"].split())
    assert not seen["clipped"], seen["clipped"]
    assert "Near-duplicate of" in seen["text"]  # the three written discussions are the same text


def test_a_clone_with_written_discussions_graded_as_this_repository_meets_every_deliverable(tmp_path):
    """The templates are the course's as released, never the notebooks of the checkout being graded."""
    problem = sandbox.bwrap_problem()
    if problem:
        (pytest.fail if os.environ.get("CI", "").lower() == "true" else pytest.skip)(f"needs bubblewrap: {problem}")
    clone = course_copy(tmp_path / "clone")
    write_discussions(clone, words=60)
    env = {**lab_env(clone), "LAB5_CIFAR10": os.environ.get("LAB5_CIFAR10", "")}
    env.pop("LAB5_PROFILE")
    run = subprocess.run([sys.executable, "-m", "grader", "--profile", "smoke", "--sandbox", "bwrap", "--out",
                          str(tmp_path / "graded")], cwd=REPO, env=env, capture_output=True, text=True, timeout=1800)
    summary = json.loads((tmp_path / "graded" / "summary.json").read_text())
    assert [d["status"] for d in summary["runs"][0]["deliverables"]] == ["met"] * 4, run.stdout[-3000:]


def write_sheet(path: Path, rows: list[dict]) -> None:
    with open(path, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


def finalize(out: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "grader", "finalize", str(out)], cwd=REPO, capture_output=True,
                          text=True, timeout=300)
