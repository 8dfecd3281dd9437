"""The lab's points, defined once: each exercise and each deliverable has a maximum, 100 in all.

Course-only facts (students never see this file): the names come from ``labutils.course``,
the points and the course references an exercise must not call are set here.

* An **exercise** earns its points when its self-check passed in the graded run and its
  solution region is the student's own: it calls none of its ``references``, the course's
  own implementation of the same skill (``grader.exercises`` reads the code with ``ast``).
* A **deliverable** without a discussion (2) earns its points when the grader finds it met.
* A **discussion** (1, 3, 4) is graded by a person, within its maximum (``manual.csv``); the
  grader's check (written, ``deliverables.MIN_OWN_WORDS`` words of the student's own, and
  the automatic part met) is the precondition: not met, it scores 0 and nobody grades it.
"""
from __future__ import annotations

import dataclasses

from labutils import course


@dataclasses.dataclass(frozen=True)
class Exercise:
    """One exercise's maximum and the course references (dotted names) a solution of it must not call."""

    points: float
    references: tuple[str, ...]


EXERCISES = {
    "make_example": Exercise(7, ("labutils.tfrecords.serialize", "labutils.tfrecords.write_splits")),
    "parse_batch": Exercise(7, ("labutils.tfrecords.parse_batch", "labutils.tfrecords.records",
                                "labutils.tfrecords.dataset", "labutils.tfrecords.read_split",
                                "labutils.tfrecords._parser")),
    "training_dataset": Exercise(8, ("labutils.tfrecords.dataset", "labutils.tfrecords.records",
                                     "labutils.training.pixels")),
    "build_transfer_model": Exercise(8, ("labutils.models.transfer_model",)),
    "freeze_conv_base": Exercise(4, ("labutils.surgery.freeze", "labutils.training.setup_phase")),
    "unfreeze_top": Exercise(6, ("labutils.surgery.unfreeze", "labutils.training.setup_phase")),
    "make_gradcam_heatmap": Exercise(10, ("labutils.cam.GradCAM", "labutils.cam.explain")),
}
# Deliverable id -> maximum (course.DELIVERABLES); those with a discussion are graded by a person.
DELIVERABLES = {1: 12, 2: 8, 3: 15, 4: 15}
TOTAL = 100


def exercise_names() -> list[str]:
    """Every exercise of the course, in notebook order."""
    return [name for nb in course.NOTEBOOKS for name in nb.exercises]


def maximum(name: str) -> float:
    """The maximum of an exercise (by name) or of a deliverable (by id, or its column name ``D<id>``)."""
    if name in EXERCISES:
        return EXERCISES[name].points
    return DELIVERABLES[int(str(name).lstrip("D"))]


def column(deliverable_id: int) -> str:
    """The gradebook column of a deliverable: ``D1``..."""
    return f"D{deliverable_id}"


def manual(deliverable: course.Deliverable) -> bool:
    """Whether a person grades the deliverable (it has a discussion)."""
    return deliverable.discussion is not None


def check() -> None:
    """The rubric covers exactly the course's exercises and deliverables and adds up to ``TOTAL``."""
    names = exercise_names()
    ids = [d.id for d in course.DELIVERABLES]
    if sorted(names) != sorted(EXERCISES) or sorted(ids) != sorted(DELIVERABLES):
        raise ValueError(f"grader/rubric.py does not match labutils/course.py: exercises {sorted(EXERCISES)} vs "
                         f"{sorted(names)}, deliverables {sorted(DELIVERABLES)} vs {ids}")
    total = sum(e.points for e in EXERCISES.values()) + sum(DELIVERABLES.values())
    if total != TOTAL:
        raise ValueError(f"grader/rubric.py: the maxima add up to {total}, not {TOTAL}")
