"""The rubric of Lab 5's four deliverables, judged from what a graded submission left.

Each deliverable gets ``status`` ``met`` / ``not met`` / ``not checkable`` and one
line of ``evidence``. The evidence comes from the grader's own work where it can
(notebook statuses, metrics it computed from saved predictions against its own
labels, files it found) and says "reported by the notebook" where a fact is only
the student's results JSON. A discussion cell (tagged ``deliverable``) counts as
edited when its text differs from the course's template and holds at least
``MIN_OWN_WORDS`` words that the template does not. The templates are the course's as
released (``templates.json`` beside this module, written by ``python -m grader release``
from the course's notebooks and checked against them by a test), never the notebooks of
the checkout the grader runs from: in a student's own clone those hold their answers.

The deliverables judge what ran: the grader runs each notebook to its end with errors
allowed, so a wrong exercise fails its notebook but the products of the cells after it
(scored models, records, overlays) still count; a notebook with an exercise left as its
stub reads ``not implemented: <task>``, and each deliverable's ``points`` follow
``grader.rubric`` (None while a person has to grade its discussion).
"""
from __future__ import annotations

import json
import re
from collections import Counter
from pathlib import Path

import nbformat

from grader import collect, rubric
from grader.schema import Assessment, ExerciseScore, NotebookResult
from labutils import atomic, config, course

MIN_OWN_WORDS = 40
# The discussion cells of the course's notebooks as released: notebook name -> the cell's text.
TEMPLATES = Path(__file__).resolve().parent / "templates.json"
WORD = re.compile(r"[^\W_]+(?:['’-][^\W_]+)*", re.UNICODE)


def _words(text: str) -> Counter:
    return Counter(word.lower() for word in WORD.findall(text))


def deliverable_text(path: Path) -> str | None:
    """The source of the first cell tagged ``deliverable`` in notebook ``path`` (None if none or unreadable)."""
    try:
        nb = nbformat.reads(collect.read_bounded(path, collect.PARSE_CAP).decode("utf-8", errors="replace"),
                            as_version=4)
    except (collect.Unreadable, ValueError, KeyError, AttributeError):
        return None
    tagged = (cell for cell in nb.cells if course.DISCUSSION_TAG in cell.get("metadata", {}).get("tags", []))
    return next((cell.source for cell in tagged), None)


def course_templates(notebooks: Path) -> dict[str, str]:
    """The discussion cell of each course notebook in ``notebooks`` that has one (notebook name -> text)."""
    found = {nb.name: deliverable_text(notebooks / nb.name) for nb in course.NOTEBOOKS}
    return {name: text for name, text in found.items() if text is not None}


def write_templates(notebooks: Path) -> dict[str, str]:
    """Record the course's discussion templates (``TEMPLATES``) from its notebooks; returns them."""
    found = course_templates(notebooks)
    atomic.write_text(TEMPLATES, json.dumps(found, indent=1, sort_keys=True) + "\n")
    return found


def templates() -> dict[str, str]:
    """The course's discussion templates as released (empty when the file is missing)."""
    try:
        return json.loads(TEMPLATES.read_text())
    except (OSError, ValueError):
        return {}


def edited(student: Path, ours: str | None) -> tuple[bool | None, str]:
    """Whether the student's deliverable cell was written, and a few words saying why (None: cannot tell);
    ``ours``: the course's template of that cell."""
    theirs = deliverable_text(student)
    if ours is None:
        return None, f"the course has no {course.DISCUSSION_TAG} cell of {student.name} to compare with"
    if theirs is None:
        return False, (f"no cell tagged {course.DISCUSSION_TAG!r} in {student.name} (the discussion cell was "
                       f"removed or untagged)")
    if theirs.strip() == ours.strip():
        return False, "its discussion cell is the unedited template"
    own = sum((_words(theirs) - _words(ours)).values())
    if own < MIN_OWN_WORDS:
        return False, f"its discussion cell has {own} words of the student's own (at least {MIN_OWN_WORDS} needed)"
    return True, f"discussion written ({own} words of the student's own)"


def _read_json(path: Path) -> tuple[dict | None, str | None]:
    try:
        doc = json.loads(collect.read_bounded(path, collect.RESULTS_CAP))
    except (collect.Unreadable, ValueError) as err:
        return None, f"{path.name}: {err}"
    return (doc, None) if isinstance(doc, dict) else (None, f"{path.name}: not a JSON object")


def _failed(nb: NotebookResult | None, name: str, by_number: dict[str, NotebookResult]) -> str | None:
    """Why notebook ``name`` left nothing to judge, in one line (None: it ran to its end, passed or not).

    A notebook skipped because one it needs stopped at an exercise stub says which exercise.
    """
    if nb is None:
        return f"{name} not graded"
    if nb.status in ("passed", "failed") and nb.error != "NotImplementedError":
        return None
    if nb.error == "NotImplementedError":
        task = (nb.message or "").split(":", 1)[0].strip() or "an exercise"
        return f"not implemented: {task}"
    if nb.status == "skipped":
        needed = [by_number.get(n) for n in re.findall(r"\d\d", nb.reason or "")]
        stub = next((n for n in needed if n and n.error == "NotImplementedError"), None)
        if stub is not None:
            return f"{_failed(stub, stub.notebook, by_number)} (in {stub.notebook}, which {name} needs)"
        return f"{name} skipped ({nb.reason})"
    return f"{name} {nb.status}" + (f": {nb.error}" if nb.error else "")


def _checked(nb: NotebookResult, model: str, expected: int | None) -> str | None:
    """What is wrong with the grader's own metrics of ``model`` (None: scored on every test image)."""
    row = next((r for r in nb.metrics if r.get("model") == model and r.get("checked")), None)
    if row is None or "roc_auc" not in row:
        return f"no test predictions of model {model!r} the grader could score"
    if expected is not None and row.get("test_examples") != expected:
        return f"model {model!r} scored on {row.get('test_examples')} of {expected} test images"
    return None


def _where(nb: NotebookResult | None) -> str:
    """`` (NN failed at cell N: Error)`` for a notebook that raised, else nothing."""
    if nb is None or nb.status != "failed":
        return ""
    return f" ({nb.notebook} failed at cell {nb.cell}" + (f": {nb.error})" if nb.error else ")")


class _Student:
    """What the assessment of one student's deliverables reads: their copy, notebooks' results, exercises."""

    def __init__(self, root: Path, results: list[NotebookResult], profile: str, scored: list[ExerciseScore]):
        self.root = root
        self.by_number = {r.notebook[:2]: r for r in results}
        self.results_dir = root / config.RESULTS_DIR.relative_to(config.ROOT)
        self.scored = scored
        self.templates = templates()
        try:
            self.expected = len(collect.true_labels(profile))
        except Exception:  # the grader's own CIFAR-10 is not available: counts cannot be checked
            self.expected = None

    def stub(self, notebook: course.Notebook) -> str | None:
        """``not implemented: <task>`` when an exercise of ``notebook`` was left as its stub."""
        left = next((e for e in self.scored if e.notebook == notebook.name and e.status == "not implemented"), None)
        return f"not implemented: {left.name}" if left else None

    def problem(self, notebook: course.Notebook) -> str | None:
        """Why ``notebook`` gives nothing to judge, or why one of its models was not scored on every test image."""
        nb = self.by_number.get(notebook.number)
        stopped = self.stub(notebook) or _failed(nb, notebook.name, self.by_number)
        if stopped:
            return stopped
        unscored = next(filter(None, (_checked(nb, model, self.expected) for model in notebook.models)), None)
        return unscored + _where(nb) if unscored else None

    def discussion(self, notebook: course.Notebook) -> tuple[bool | None, str]:
        return edited(self.root / "notebooks" / notebook.name, self.templates.get(notebook.name))

    def results(self, notebook: course.Notebook) -> tuple[dict | None, str | None]:
        return _read_json(self.results_dir / notebook.results)


def _discussed(student: _Student, deliverable: course.Deliverable, done_text: str) -> tuple[str, str]:
    """The status and evidence of a deliverable whose automatic part is done: it now rests on its discussion."""
    done, why = student.discussion(deliverable.discussion)
    if done is None:
        return "not checkable", why
    return ("met", f"{done_text}; {why}") if done else ("not met", why)


def _lab4(student: _Student, deliverable: course.Deliverable) -> tuple[str, str]:
    problem = student.problem(deliverable.notebook)
    if problem:
        return "not met", problem
    return _discussed(student, deliverable, f"both models scored by the grader on all {student.expected} test images")


def _conv_base(student: _Student, deliverable: course.Deliverable) -> tuple[str, str]:
    nb = deliverable.notebook
    problem = student.stub(nb) or _failed(student.by_number.get(nb.number), nb.name, student.by_number)
    if problem:
        return "not met", problem
    failed = next((e for e in student.scored if e.notebook == nb.name and e.status != "passed"), None)
    if failed:
        return "not met", f"{nb.number}'s structural self-check of {failed.name} {failed.status}: {failed.evidence}"
    doc, error = student.results(nb)
    base = doc.get(course.CONV_BASE) if doc else None
    if error:
        return "not checkable", error
    if not isinstance(base, dict):
        return "not met", f"{nb.number}'s results record no {course.CONV_BASE} (reported by the notebook)"
    if base.get("name") != course.CONV_BASE or base.get("include_top") is not False:
        return "not met", (f"{course.CONV_BASE} recorded as {json.dumps(base)[:120]} (name {course.CONV_BASE}, "
                           f"include_top false expected; reported by the notebook)")
    return "met", (f"sub-model {course.CONV_BASE} of {base.get('backbone')}, {base.get('layers')} layers, without its "
                   f"top (reported by the notebook; its structural self-checks passed)")


def _compared(student: _Student, deliverable: course.Deliverable) -> tuple[str, str]:
    problem = student.problem(deliverable.notebook)
    if problem:
        return "not met", problem
    doc, _ = student.results(deliverable.notebook)
    compared = (doc or {}).get("compared_with")
    if not compared:
        return "not met", f"{deliverable.notebook.number}'s comparison table holds no Lab 4 model (run 02 before 03)"
    return _discussed(student, deliverable, f"every test image scored once (grader), compared with "
                                            f"{', '.join(map(str, compared))}")


def photo_rows(student_root: Path) -> list[dict]:
    """The rows of notebook 04's results: one per photo, with its top-3 labels and overlay files."""
    doc, _ = _read_json(student_root / config.RESULTS_DIR.relative_to(config.ROOT) / course.CAM_NB.results)
    return [r for r in (doc or {}).get("images", []) if isinstance(r, dict)]


def _explained(student: _Student, deliverable: course.Deliverable) -> tuple[str, str]:
    problem = student.stub(deliverable.notebook) or student.problem(deliverable.notebook)
    doc, error = student.results(deliverable.notebook) if not problem else (None, None)
    if problem or error:
        return ("not met", problem) if problem else ("not checkable", error + _where(
            student.by_number.get(deliverable.notebook.number)))
    rows = photo_rows(student.root)
    img_out = student.root / config.IMG_OUT.relative_to(config.ROOT)
    present = {p.name for p in img_out.iterdir() if p.is_file()} if img_out.is_dir() else set()
    lacking = [r.get("image") for r in rows if not r.get("top3") or not r.get("overlays") or
               any(Path(str(f)).name not in present for f in r.get("overlays", {}).values())]
    if not rows:
        return "not met", "no photo explained (img_in/ empty?)"
    if lacking:
        return "not met", (f"{len(lacking)} of {len(rows)} photos lack top-3 labels or overlays in img_out/, "
                           f"e.g. {lacking[0]}")
    overlays = sum(len(r["overlays"]) for r in rows)
    return _discussed(student, deliverable, f"{len(rows)} photos with top-3 labels and {overlays} overlays in img_out/")


# How each deliverable of course.DELIVERABLES is judged, by its id.
JUDGES = {1: _lab4, 2: _conv_base, 3: _compared, 4: _explained}


def _points(deliverable: course.Deliverable, status: str) -> tuple[float | None, bool]:
    """``(points, manual)``: the grader's own points; None while a person grades a met discussion."""
    if rubric.manual(deliverable):
        return (None, True) if status == "met" else (0, True)
    return (rubric.maximum(deliverable.id) if status == "met" else 0), False


def assess(root: Path, results: list[NotebookResult], profile: str,
           scored: list[ExerciseScore] = ()) -> list[Assessment]:
    """The deliverables of one student.

    ``root``: the student's (graded, private) copy; ``results``: the grader's per-notebook results;
    ``scored``: their exercises (``grader.exercises``). Discussion cells are compared with ``TEMPLATES``.
    """
    student = _Student(root, results, profile, list(scored))
    assessed = []
    for d in course.DELIVERABLES:
        status, evidence = JUDGES[d.id](student, d)
        points, manual = _points(d, status)
        assessed.append(Assessment(d.id, d.title, status, evidence, points, rubric.maximum(d.id), manual))
    return assessed
