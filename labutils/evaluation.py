"""Evaluating a model on a whole split of the TFRecords, every example counted exactly once."""
from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

import keras
import numpy as np

from labutils import config, metrics, tfrecords


class IncompleteEvaluationError(RuntimeError):
    """The model did not see every example of the split exactly once."""


class Predictions(NamedTuple):
    """Per example, sorted by ``indices``: labels float32 (N,), cat scores float32 (N,), source indices int64 (N,)."""

    labels: np.ndarray
    scores: np.ndarray
    indices: np.ndarray


def check_each_once(indices: np.ndarray, expected: int, split: str = "test") -> None:
    """Raise unless ``indices`` are ``expected`` distinct values (each example seen once)."""
    unique, counts = np.unique(indices, return_counts=True)
    if len(indices) != expected or len(unique) != len(indices):
        repeated = unique[counts > 1][:5].tolist()
        raise IncompleteEvaluationError(
            f"The {split} pass saw {len(indices)} examples ({len(unique)} distinct indices"
            + (f"; repeated: {repeated}" if repeated else "")
            + f") but the manifest lists {expected}. {tfrecords.REWRITE_HINT}")


def predict(model: keras.Model, split: str = "test", *, batch_size: int = 256,
            records_dir: Path = config.RECORDS_DIR) -> Predictions:
    """``model``'s cat score for every example of ``split``, read from the TFRecords (raw pixels 0-255),
    checked against the manifest count with each ``index`` once.
    """
    ds = tfrecords.dataset(split, batch_size, preprocess=None, with_index=True, records_dir=records_dir)
    labels, scores, indices = [], [], []
    for images, y, index in ds:
        scores.append(np.asarray(model.predict_on_batch(images), dtype=np.float32).reshape(-1))
        labels.append(y.numpy())
        indices.append(index.numpy())
    labels, scores, indices = (np.concatenate(a) if a else np.zeros(0) for a in (labels, scores, indices))
    check_each_once(indices, tfrecords.num_examples(split, records_dir), split)
    order = np.argsort(indices)
    return Predictions(labels[order], scores[order], indices[order].astype(np.int64))


def evaluate(model: keras.Model, threshold: float, split: str = "test", *, batch_size: int = 256,
             records_dir: Path = config.RECORDS_DIR) -> dict:
    """:func:`labutils.metrics.binary_metrics` of ``model`` on every example of ``split``."""
    p = predict(model, split, batch_size=batch_size, records_dir=records_dir)
    return metrics.binary_metrics(p.labels, p.scores, threshold)


def threshold_on_validation(model: keras.Model, *, batch_size: int = 256,
                            records_dir: Path = config.RECORDS_DIR) -> float:
    """The decision threshold maximising F1 on the validation split (never chosen on test)."""
    p = predict(model, "val", batch_size=batch_size, records_dir=records_dir)
    return metrics.choose_threshold(p.labels, p.scores)


class Evaluation(NamedTuple):
    """One model on the test split: the ``threshold`` chosen on validation, the test
    ``predictions``, and :func:`labutils.metrics.binary_metrics` at that threshold."""

    threshold: float
    predictions: Predictions
    metrics: dict


def on_test(model: keras.Model, *, batch_size: int = 256, records_dir: Path = config.RECORDS_DIR) -> Evaluation:
    """Choose ``model``'s threshold on the validation split, then score every test example once."""
    threshold = threshold_on_validation(model, batch_size=batch_size, records_dir=records_dir)
    p = predict(model, "test", batch_size=batch_size, records_dir=records_dir)
    return Evaluation(threshold, p, metrics.binary_metrics(p.labels, p.scores, threshold))
