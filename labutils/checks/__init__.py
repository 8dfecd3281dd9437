"""Self-checks for the lab's exercises, in the style of the CS231n assignments.

After each exercise a notebook cell compares the student's result with the
``labutils`` reference and either prints what matched (and the largest
difference, next to the tolerance it must stay under) or raises
:class:`SelfCheckError` with a message in the student's terms: which feature,
which batch element, which layer differs, by how much and where.

A check compares what the code *means* (parsed content, shapes, dtypes, values
within a stated tolerance), never incidental bytes or names, so every correct
solution passes. One module per exercise.
"""
from __future__ import annotations

import numpy as np


class SelfCheckError(AssertionError):
    """A self-check found a difference; the message names it (never a bare AssertionError)."""


def relative_error(x: np.ndarray, y: np.ndarray) -> float:
    """CS231n's relative error: ``max |x - y| / max(1e-8, |x| + |y|)`` over all elements (0 for empty arrays)."""
    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    if x.size == 0:
        return 0.0
    return float(np.max(np.abs(x - y) / np.maximum(1e-8, np.abs(x) + np.abs(y))))


def largest_difference(x: np.ndarray, y: np.ndarray) -> tuple[float, tuple[int, ...]]:
    """The largest absolute difference of two same-shaped arrays and where it is (an index tuple)."""
    diff = np.abs(np.asarray(x, dtype=np.float64) - np.asarray(y, dtype=np.float64))
    if diff.size == 0:
        return 0.0, ()
    where = np.unravel_index(int(np.argmax(diff)), diff.shape)
    return float(diff[where]), tuple(int(i) for i in where)


def passed(task: str, detail: str) -> str:
    """Print and return the one line a passing self-check shows."""
    line = f"OK {task}: {detail}"
    print(line)
    return line
