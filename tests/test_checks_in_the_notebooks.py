"""A wrong solution, written into the notebook's own exercise cell, stops at that notebook's self-check
with a message that names the mistake; the cell as committed passes.

Each case takes the solution cell from the committed notebook, changes a line or two as a student might,
runs it with the names the notebook imports, and calls the check as the notebook's check cell does
(smoke profile: the stand-in backbones and the 128 px MobileNet of the shared Keras cache)."""
from __future__ import annotations

import functools
import re
import types
from pathlib import Path

import keras
import nbformat
import pytest
import tensorflow as tf

from labutils import backbones, cam, config, course, images, models, tfrecords
from labutils.checks import SelfCheckError, gradcam, pipeline, transfer

REPO = Path(__file__).resolve().parents[1]
SMOKE = config.profile("smoke")


def exercise(notebook: str, name: str, *replacements: tuple[str, str], **names):
    """The function ``name`` defined by ``notebook``'s exercise cell, after ``replacements`` (each must apply)."""
    nb = nbformat.read(REPO / "notebooks" / notebook, as_version=4)
    source = next(c.source for c in nb.cells if c.cell_type == "code" and f"def {name}(" in c.source)
    for old, new in replacements:
        assert old in source, old
        source = source.replace(old, new)
    namespace = {"tf": tf, "keras": keras, "re": re, "config": config, "course": course, "models": models,
                 "backbones": backbones, "tfrecords": tfrecords, **names}
    exec(compile(source, f"{notebook}: {name}", "exec"), namespace)
    return namespace[name]


# ---- 02 training_dataset ------------------------------------------------------------------------------
EXAMPLE_SHUFFLE = "ds = ds.shuffle(10_000, seed=seed).repeat()"
BATCH_MAP = "ds = ds.batch(batch_size).map(tfrecords.parse_batch, num_parallel_calls=tf.data.AUTOTUNE)"


@pytest.mark.parametrize("replacements, message", [
    ((), None),
    (((EXAMPLE_SHUFFLE, "ds = ds.repeat()"),), "the examples are not shuffled"),
    (((EXAMPLE_SHUFFLE, "ds = ds.repeat()"), (BATCH_MAP, BATCH_MAP + ".shuffle(64, seed=seed)")),
     "whole batches are shuffled, not examples"),
    ((("cycle_length=len(files)", "cycle_length=1"), ("shuffle(10_000", "shuffle(8")),
     "the shuffle buffer is too small"),
], ids=["as committed", "only the shard list shuffled", "batches shuffled", "tiny buffer, one shard at a time"])
def test_02_training_dataset(replacements, message, smoke_records):
    shards = types.SimpleNamespace(shard_files=functools.partial(tfrecords.shard_files, records_dir=smoke_records),
                                   parse_batch=tfrecords.parse_batch)
    training_dataset = exercise("02_lab4_retrain.ipynb", "training_dataset", *replacements, tfrecords=shards)
    batch = SMOKE.batch_size
    check = functools.partial(pipeline.check_training_dataset, training_dataset("train", batch), "train", batch,
                              records_dir=smoke_records)
    if message is None:
        assert "shuffled" in check()
    else:
        with pytest.raises(SelfCheckError, match=message):
            check()


# ---- 03 build_transfer_model --------------------------------------------------------------------------
PREPROCESS = 'x = models.BackbonePreprocess(backbone, name="preprocess")(x)'


@pytest.mark.parametrize("replacements, message", [
    ((), None),
    (((PREPROCESS, "x = keras.layers.Rescaling(1 / 255)(x)"),), r"conv_base receives pixels scaled to \[0, 1\]"),
    (((PREPROCESS, "x = keras.layers.Rescaling(1 / 127.5, offset=-1)(x)"),), r"pixels scaled to \[-1, 1\]"),
], ids=["as committed", "Rescaling(1/255)", "Rescaling to [-1, 1]"])
def test_03_build_transfer_model(replacements, message, monkeypatch):
    monkeypatch.setattr(config, "_active", SMOKE)  # as use_profile("smoke"): ResNet50's offline stand-in
    build = exercise("03_resnet_transfer.ipynb", "build_transfer_model", *replacements)
    size = SMOKE.transfer_input_size
    model = build("resnet50", size, "imagenet")
    if message is None:
        assert "called with training=False" in transfer.check_model(model, "resnet50", size)
    else:
        with pytest.raises(SelfCheckError, match=message):
            transfer.check_model(model, "resnet50", size)


# ---- 04 make_gradcam_heatmap --------------------------------------------------------------------------
WEIGHTS = "weights = tf.reduce_mean(grads, axis=(0, 1, 2))"
RELU = "heatmap = tf.nn.relu(tf.reduce_sum(conv_output[0] * weights, axis=-1))"


@pytest.fixture(scope="module")
def cam_setup(keras_home):
    """The notebook's smoke model, layer and first photo of img_in/."""
    model = backbones.build(SMOKE.cam_backbone, include_top=True, weights="imagenet",
                            input_shape=(SMOKE.cam_input_size, SMOKE.cam_input_size, 3))
    layer = backbones.DEFAULT_CAM_LAYERS.get(SMOKE.cam_backbone) or cam.find_layer(model)
    photos, _ = images.load_folder(config.IMG_IN)
    x = backbones.preprocess_input(SMOKE.cam_backbone)(images.to_batch([photos[0].rgb], SMOKE.cam_input_size))
    return model, layer, x


@pytest.mark.parametrize("replacements, message", [
    ((), None),
    (((RELU, RELU.replace("tf.nn.relu(", "(")),), "apply a ReLU"),
    (((WEIGHTS, WEIGHTS.replace("(0, 1, 2)", "(0, 1)")),), "weights pooled over the wrong axes"),
    (((WEIGHTS, WEIGHTS.replace("reduce_mean", "reduce_max")),), "the channel weights are the gradient's maximum"),
    ((("pred_index = tf.argmax(scores[0])", "pred_index = 0"),), r"with no class given \(pred_index=None\)"),
], ids=["as committed", "no ReLU", "mean over rows only", "maximum of the gradient", "class 0 by default"])
def test_04_make_gradcam_heatmap(replacements, message, cam_setup):
    make_gradcam_heatmap = exercise("04_vgg16_cam.ipynb", "make_gradcam_heatmap", *replacements)
    model, layer, x = cam_setup
    if message is None:
        assert "heatmaps equal labutils'" in gradcam.check_heatmap(make_gradcam_heatmap, model, layer, x)
    else:
        with pytest.raises(SelfCheckError, match=message):
            gradcam.check_heatmap(make_gradcam_heatmap, model, layer, x)
