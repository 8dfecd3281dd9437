"""The rubric of Lab 5's four deliverables, judged from what a graded submission left.

Each deliverable gets ``status`` ``met`` / ``not met`` / ``not checkable`` and one
line of ``evidence``. The evidence comes from the grader's own work where it can
(notebook statuses, metrics it computed from saved predictions against its own
labels, files it found) and says "reported by the notebook" where a fact is only
the student's results JSON. A discussion cell (tagged ``deliverable``) counts as
edited when its text differs from the course's template and holds at least
``MIN_OWN_WORDS`` words that the template does not.
"""
from __future__ import annotations

import json
import re
from collections import Counter
from pathlib import Path

import nbformat

from grader import collect
from grader.schema import Assessment, NotebookResult
from labutils import config, course

MIN_OWN_WORDS = 40
# The course's own notebooks: the templates of the discussion cells.
TEMPLATES = Path(__file__).resolve().parents[1] / config.NOTEBOOKS_DIR.relative_to(config.ROOT)
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


def edited(student: Path, template: Path) -> tuple[bool | None, str]:
    """Whether the student's deliverable cell was written, and a few words saying why (None: cannot tell)."""
    theirs, ours = deliverable_text(student), deliverable_text(template)
    if ours is None:
        return None, f"the course's {template.name} has no {course.DISCUSSION_TAG} cell to compare with"
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
    """Why notebook ``name`` did not pass, in one line (None when it passed).

    A notebook skipped because one it needs stopped at an exercise stub says which exercise.
    """
    if nb is None:
        return f"{name} not graded"
    if nb.status == "passed":
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


class _Student:
    """What the assessment of one student's deliverables reads: their copy, notebooks' results, the test count."""

    def __init__(self, root: Path, results: list[NotebookResult], profile: str):
        self.root = root
        self.by_number = {r.notebook[:2]: r for r in results}
        self.results_dir = root / config.RESULTS_DIR.relative_to(config.ROOT)
        try:
            self.expected = len(collect.true_labels(profile))
        except Exception:  # the grader's own CIFAR-10 is not available: counts cannot be checked
            self.expected = None

    def problem(self, notebook: course.Notebook) -> str | None:
        """Why ``notebook`` did not pass, or why one of its models was not scored on every test image."""
        nb = self.by_number.get(notebook.number)
        return _failed(nb, notebook.name, self.by_number) or next(
            filter(None, (_checked(nb, model, self.expected) for model in notebook.models)), None)

    def discussion(self, notebook: course.Notebook) -> tuple[bool | None, str]:
        return edited(self.root / "notebooks" / notebook.name, TEMPLATES / notebook.name)

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
    problem = _failed(student.by_number.get(deliverable.notebook.number), deliverable.notebook.name, student.by_number)
    if problem:
        return "not met", problem
    doc, error = student.results(deliverable.notebook)
    base = doc.get(course.CONV_BASE) if doc else None
    if error:
        return "not checkable", error
    if not isinstance(base, dict):
        return "not met", f"{deliverable.notebook.number}'s results record no {course.CONV_BASE} (reported by the notebook)"
    if base.get("name") != course.CONV_BASE or base.get("include_top") is not False:
        return "not met", (f"{course.CONV_BASE} recorded as {json.dumps(base)[:120]} (name {course.CONV_BASE}, "
                           f"include_top false expected; reported by the notebook)")
    return "met", (f"sub-model {course.CONV_BASE} of {base.get('backbone')}, {base.get('layers')} layers, without its "
                   f"top (reported by the notebook, which passed its structural self-checks)")


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


def _explained(student: _Student, deliverable: course.Deliverable) -> tuple[str, str]:
    problem = student.problem(deliverable.notebook)
    doc, error = student.results(deliverable.notebook) if not problem else (None, None)
    if problem or error:
        return ("not met", problem) if problem else ("not checkable", error)
    rows = [r for r in doc.get("images", []) if isinstance(r, dict)]
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


def assess(root: Path, results: list[NotebookResult], profile: str) -> list[Assessment]:
    """The deliverables of one student.

    ``root``: the student's (graded, private) copy; ``results``: the grader's per-notebook results.
    The discussion cells are compared with the course's own notebooks (``TEMPLATES``).
    """
    student = _Student(root, results, profile)
    return [Assessment(d.id, d.title, *JUDGES[d.id](student, d)) for d in course.DELIVERABLES]
