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

from labutils import config
from labutils.grade import collect

MIN_OWN_WORDS = 40
TAG = "deliverable"
NAMES = {
    1: "Lab 4 network retrained from TFRecords, compared with in-RAM training",
    2: "Pre-trained model with a clearly defined conv_base",
    3: "Final performance compared with Lab 4, discussed",
    4: "Top-3 labels and heatmaps for every image in img_in/, discussed",
}
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
    return next((cell.source for cell in nb.cells if TAG in cell.get("metadata", {}).get("tags", [])), None)


def edited(student: Path, template: Path) -> tuple[bool | None, str]:
    """Whether the student's deliverable cell was written, and a few words saying why (None: cannot tell)."""
    theirs, ours = deliverable_text(student), deliverable_text(template)
    if ours is None:
        return None, f"the course's {template.name} has no {TAG} cell to compare with"
    if theirs is None:
        return False, f"no cell tagged {TAG!r} in {student.name} (the discussion cell was removed or untagged)"
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


def _failed(nb: dict | None, name: str, by_number: dict[str, dict]) -> str | None:
    """Why notebook ``name`` did not pass, in one line (None when it passed).

    A notebook skipped because one it needs stopped at an exercise stub says which exercise.
    """
    if nb is None:
        return f"{name} not graded"
    if nb["status"] == "passed":
        return None
    if nb.get("error") == "NotImplementedError":
        task = (nb.get("message") or "").split(":", 1)[0].strip() or "an exercise"
        return f"not implemented: {task}"
    if nb["status"] == "skipped":
        needed = [by_number.get(n) for n in re.findall(r"\d\d", nb.get("reason") or "")]
        stub = next((n for n in needed if n and n.get("error") == "NotImplementedError"), None)
        if stub is not None:
            return f"{_failed(stub, stub['notebook'], by_number)} (in {stub['notebook']}, which {name} needs)"
        return f"{name} skipped ({nb.get('reason')})"
    return f"{name} {nb['status']}" + (f": {nb.get('error')}" if nb.get("error") else "")


def _checked(nb: dict, model: str, expected: int | None) -> str | None:
    """What is wrong with the grader's own metrics of ``model`` (None: scored on every test image)."""
    row = next((r for r in nb.get("metrics", []) if r.get("model") == model and r.get("checked")), None)
    if row is None or "roc_auc" not in row:
        return f"no test predictions of model {model!r} the grader could score"
    if expected is not None and row.get("test_examples") != expected:
        return f"model {model!r} scored on {row.get('test_examples')} of {expected} test images"
    return None


def assess(root: Path, executed: Path, notebooks: list[dict], profile: str,
           course_notebooks: Path) -> list[dict]:
    """The four deliverables of one student.

    ``root``: the student's (graded, private) copy; ``executed``: where the executed notebooks
    are; ``notebooks``: the grader's per-notebook results (dicts); ``course_notebooks``: the
    course's own notebooks, the templates of the discussion cells.
    """
    by_number = {nb["notebook"][:2]: nb for nb in notebooks}
    results_dir = root / config.RESULTS_DIR.relative_to(config.ROOT)
    try:
        expected = len(collect.true_labels(profile))
    except Exception:  # the grader's own CIFAR-10 is not available: counts cannot be checked
        expected = None
    out = []

    def entry(number: int, status: str, evidence: str) -> None:
        out.append({"id": number, "name": NAMES[number], "status": status, "evidence": evidence})

    def discussion(name: str) -> tuple[bool | None, str]:
        return edited(root / "notebooks" / name, course_notebooks / name)

    nb02, nb03, nb04 = (by_number.get(n) for n in ("02", "03", "04"))
    names = {n: next((c for c in config.COURSE_NOTEBOOKS if c.startswith(n)), f"{n}_*.ipynb") for n in ("02", "03", "04")}

    # 1. Lab 4 from TFRecords vs RAM
    problem = _failed(nb02, names["02"], by_number) or _checked(nb02, "ram", expected) or _checked(nb02, "tfrecord", expected)
    done, why = discussion(names["02"]) if not problem else (None, "")
    if problem:
        entry(1, "not met", problem)
    elif done is None:
        entry(1, "not checkable", why)
    else:
        entry(1, "met" if done else "not met", f"both models scored by the grader on all {expected} test images; "
              + why if done else why)

    # 2. conv_base
    problem = _failed(nb03, names["03"], by_number)
    doc, error = _read_json(results_dir / "03_resnet_transfer.json") if not problem else (None, None)
    base = doc.get("conv_base") if doc else None
    if problem:
        entry(2, "not met", problem)
    elif error:
        entry(2, "not checkable", error)
    elif not isinstance(base, dict):
        entry(2, "not met", "03's results record no conv_base (reported by the notebook)")
    elif base.get("name") != "conv_base" or base.get("include_top") is not False:
        entry(2, "not met", f"conv_base recorded as {json.dumps(base)[:120]} (name conv_base, include_top false "
                            f"expected; reported by the notebook)")
    else:
        entry(2, "met", f"sub-model conv_base of {base.get('backbone')}, {base.get('layers')} layers, without its "
                        f"top (reported by the notebook, which passed its structural self-checks)")

    # 3. compared with Lab 4, discussed
    problem = _failed(nb03, names["03"], by_number) or _checked(nb03, "transfer", expected)
    compared = (doc or {}).get("compared_with") if not problem else None
    done, why = discussion(names["03"]) if not problem else (None, "")
    if problem:
        entry(3, "not met", problem)
    elif not compared:
        entry(3, "not met", "03's comparison table holds no Lab 4 model (run 02 before 03)")
    elif done is None:
        entry(3, "not checkable", why)
    else:
        entry(3, "met" if done else "not met",
              f"every test image scored once (grader), compared with {', '.join(map(str, compared))}; " + why
              if done else why)

    # 4. every photo: top-3 and overlays, discussed
    problem = _failed(nb04, names["04"], by_number)
    doc4, error = _read_json(results_dir / "04_vgg16_cam.json") if not problem else (None, None)
    if problem:
        entry(4, "not met", problem)
    elif error:
        entry(4, "not checkable", error)
    else:
        rows = [r for r in doc4.get("images", []) if isinstance(r, dict)]
        img_out = root / config.IMG_OUT.relative_to(config.ROOT)
        present = {p.name for p in img_out.iterdir() if p.is_file()} if img_out.is_dir() else set()
        lacking = [r.get("image") for r in rows if not r.get("top3") or not r.get("overlays") or
                   any(Path(str(f)).name not in present for f in r.get("overlays", {}).values())]
        done, why = discussion(names["04"])
        if not rows:
            entry(4, "not met", "no photo explained (img_in/ empty?)")
        elif lacking:
            entry(4, "not met", f"{len(lacking)} of {len(rows)} photos lack top-3 labels or overlays in img_out/, "
                                f"e.g. {lacking[0]}")
        elif done is None:
            entry(4, "not checkable", why)
        else:
            entry(4, "met" if done else "not met",
                  f"{len(rows)} photos with top-3 labels and {sum(len(r['overlays']) for r in rows)} overlays in "
                  f"img_out/; " + why if done else why)
    return out


def render(runs: list[dict]) -> list[str]:
    """Markdown lines: one table, a row per student, a column per deliverable; and the count met."""
    from labutils.grade.report import cell

    if not any(run.get("deliverables") for run in runs):
        return []
    lines = ["## Deliverables", "", "| Student | " + " | ".join(f"{n}. {cell(NAMES[n])}" for n in NAMES) + " |",
             "|---|" + "---|" * len(NAMES)]
    for run in runs:
        found = {d["id"]: d for d in run.get("deliverables", [])}
        cells = [f"**{found[n]['status']}**: {cell(found[n]['evidence'])}" if n in found else "" for n in NAMES]
        lines.append(f"| {cell(run['name'])} | " + " | ".join(cells) + " |")
    met = [sum(any(d["id"] == n and d["status"] == "met" for d in run.get("deliverables", [])) for run in runs)
           for n in NAMES]
    lines += ["", "Met, per deliverable: " + "; ".join(f"{n}. {m} of {len(runs)}" for n, m in zip(NAMES, met)), ""]
    return lines
