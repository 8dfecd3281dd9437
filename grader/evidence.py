"""What the grader keeps of one student before their private copy is deleted: exercises, deliverables, discussions.

Called once per student after their notebooks ran (``runner.grade_repo``). Everything a person
needs later (the gradebook, ``discussions.html``, the feedback pages, a Kubernetes ``merge``) is
either in the returned records, which go into the student's ``summary.json``, or a file in the
student's output folder: thumbnails of the Freya/Artemis overlays (``config.CAM_PAIR``) in
``evidence/``, small JPEGs made from ``img_out/`` and named by position, never by the student.
"""
from __future__ import annotations

import dataclasses
import io
import shutil
from pathlib import Path

from grader import collect, deliverables, exercises
from grader.schema import Assessment, Discussion, ExerciseScore, NotebookResult, Photo
from labutils import config, course

EVIDENCE = "evidence"  # the thumbnails' folder in a student's outputs
THUMBNAIL_PX = 240
IMAGE_CAP = 20_000_000  # bytes of one overlay the grader reads
TEXT_CAP = 50_000  # characters of one discussion kept


@dataclasses.dataclass
class Assessed:
    """One student's assessment: a row per deliverable, per exercise and per discussion."""

    deliverables: list[Assessment]
    exercises: list[ExerciseScore]
    discussions: list[Discussion]


def _thumbnail(source: Path, target: Path) -> bool:
    """A JPEG of at most ``THUMBNAIL_PX`` pixels a side from an image the student wrote; False if unreadable."""
    from PIL import Image

    try:
        with Image.open(io.BytesIO(collect.read_bounded(source, IMAGE_CAP))) as image:
            image = image.convert("RGB")
            image.thumbnail((THUMBNAIL_PX, THUMBNAIL_PX))
            target.parent.mkdir(parents=True, exist_ok=True)
            image.save(target, "JPEG", quality=85)
        return True
    except Exception:  # anything a student's file can make PIL raise: no thumbnail
        return False


def _label(top: dict) -> str:
    probability = top.get("probability")
    return f"{top.get('label')} ({probability:.2f})" if isinstance(probability, float) else str(top.get("label"))


def photos(root: Path, out_dir: Path) -> list[Photo]:
    """Notebook 04's photos with their top-3 labels; the Freya/Artemis ones with thumbnails of their overlays."""
    img_out = root / config.IMG_OUT.relative_to(config.ROOT)
    pair = tuple(config.CAM_PAIR.values())
    found = []
    for i, row in enumerate(deliverables.photo_rows(root)):
        image = str(row.get("image", ""))[:200]
        top3 = [_label(t) for t in row.get("top3", []) if isinstance(t, dict)][:3]
        thumbs = []
        overlays = row.get("overlays") if isinstance(row.get("overlays"), dict) else {}
        if any(name in image.lower() for name in pair):
            for j, written in enumerate(list(overlays.values())[:6]):
                target = Path(EVIDENCE) / f"{course.CAM_NB.number}_{i}_{j}.jpg"
                if _thumbnail(img_out / Path(str(written)).name, out_dir / target):
                    thumbs.append(str(target))
        found.append(Photo(image, top3, thumbs))
    return found


def discussions(root: Path, out_dir: Path) -> list[Discussion]:
    """The text of each discussion cell (in full, up to ``TEXT_CAP``); deliverable 4's with its photos."""
    found = []
    for d in course.DELIVERABLES:
        if d.discussion is None:
            continue
        text = deliverables.deliverable_text(root / "notebooks" / d.discussion.name)
        shown = photos(root, out_dir) if d.discussion is course.CAM_NB else []
        found.append(Discussion(d.id, None if text is None else text[:TEXT_CAP], shown))
    return found


def assess(root: Path, out_dir: Path, results: list[NotebookResult], profile: str) -> Assessed:
    """Exercises, deliverables and discussions of the student whose private copy is ``root``;
    ``out_dir``: their outputs (the executed notebooks; the thumbnails go there)."""
    shutil.rmtree(out_dir / EVIDENCE, ignore_errors=True)  # an earlier run's thumbnails
    by_name = {r.notebook: r for r in results}
    scored = []
    for nb in course.NOTEBOOKS:
        result = by_name.get(nb.name) or NotebookResult(nb.name, "missing")
        source = root / "notebooks" / nb.name
        executed = out_dir / result.output if result.output else None
        scored += exercises.score(nb, result, source if source.is_file() else None, executed)
    return Assessed(deliverables.assess(root, results, profile, scored), scored, discussions(root, out_dir))
