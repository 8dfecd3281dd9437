"""Evaluation over TFRecords: every test example exactly once, and metrics equal to an independent numpy path."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import keras
import numpy as np
import pytest

from labutils import cifar10, config, evaluation, metrics, tfrecords

WEIGHTS = np.array([[4.0], [-3.0], [1.0]], dtype="float32")  # on the mean red, green, blue (0-1)
BIAS = np.array([-1.0], dtype="float32")


@pytest.fixture(scope="module")
def colour_model() -> keras.Model:
    """A fixed, hand-set "model": a logistic function of the image's mean colour."""
    model = keras.Sequential([keras.Input(config.IMAGE_SHAPE), keras.layers.Rescaling(1 / 255),
                              keras.layers.GlobalAveragePooling2D(), keras.layers.Dense(1, activation="sigmoid")])
    model.layers[-1].set_weights([WEIGHTS, BIAS])
    return model


def numpy_scores(images: np.ndarray) -> np.ndarray:
    mean_colour = images.astype(np.float64).mean(axis=(1, 2)) / 255
    return 1 / (1 + np.exp(-(mean_colour @ WEIGHTS.astype(np.float64)[:, 0] + BIAS[0])))


def test_every_test_example_is_scored_once_and_metrics_match_numpy(colour_model, smoke_splits, smoke_records):
    test = smoke_splits["test"]
    p = evaluation.predict(colour_model, "test", batch_size=64, records_dir=smoke_records)  # 400 = 6 x 64 + 16
    np.testing.assert_array_equal(p.indices, np.sort(test.indices))
    assert len(p.indices) == tfrecords.num_examples("test", smoke_records) == 400
    order = np.argsort(test.indices)
    np.testing.assert_array_equal(p.labels, test.labels[order])
    # TensorFlow's float32 means vs NumPy's float64: agreement to float32 round-off of a 3,072-term mean.
    np.testing.assert_allclose(p.scores, numpy_scores(test.images[order]), atol=1e-5)

    threshold = 0.3
    got = evaluation.evaluate(colour_model, threshold, batch_size=64, records_dir=smoke_records)
    expected = metrics.binary_metrics(test.labels, numpy_scores(test.images), threshold)
    assert got["confusion_matrix"] == expected["confusion_matrix"] and got["examples"] == 400
    for key in ("roc_auc", "pr_auc", "precision", "recall", "f1", "accuracy", "never_cat_accuracy"):
        assert got[key] == pytest.approx(expected[key], abs=1e-5), key


def test_threshold_is_chosen_on_validation(colour_model, smoke_splits, smoke_records):
    val = smoke_splits["val"]
    assert evaluation.threshold_on_validation(colour_model, records_dir=smoke_records) == pytest.approx(
        metrics.choose_threshold(val.labels, numpy_scores(val.images)), abs=1e-5)


def test_a_count_different_from_the_manifest_is_refused(colour_model, smoke_records, tmp_path):
    copy = Path(shutil.copytree(smoke_records, tmp_path / "records"))
    manifest = json.loads((copy / "manifest.json").read_text())
    manifest["splits"]["test"]["examples"] += 1  # a manifest that promises one image more than the shards hold
    manifest["splits"]["test"]["shards"][-1]["examples"] += 1
    (copy / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(evaluation.IncompleteEvaluationError, match="saw 400 examples .* lists 401"):
        evaluation.predict(colour_model, "test", records_dir=copy)


def test_an_example_seen_twice_is_refused(colour_model, smoke_splits, tmp_path):
    test = smoke_splits["test"]
    twice = cifar10.Split(*(np.concatenate([column, column[7:8]]) for column in test))  # 401 rows, index 7 twice
    tfrecords.write_splits({"test": twice}, tmp_path, progress=False)
    with pytest.raises(evaluation.IncompleteEvaluationError, match=r"repeated: \[7\]"):
        evaluation.predict(colour_model, "test", records_dir=tmp_path)


def test_check_each_once():
    evaluation.check_each_once(np.array([3, 1, 2]), 3)
    with pytest.raises(evaluation.IncompleteEvaluationError):
        evaluation.check_each_once(np.array([1, 2]), 3)
    with pytest.raises(evaluation.IncompleteEvaluationError, match=r"repeated: \[2\]"):
        evaluation.check_each_once(np.array([1, 2, 2]), 3)
