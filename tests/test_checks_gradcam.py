"""Notebook 04's self-check compares a one-image Grad-CAM with labutils' after the stated normalisation
(ReLU, then divide by the maximum): correct variants pass, plausible mistakes fail saying what differs."""
from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf

from labutils import backbones, cam, images
from labutils.checks import SelfCheckError, gradcam as check


@pytest.fixture(scope="module")
def setup(keras_home, shared_images):
    model = backbones.build("mobilenet_025", include_top=True, weights="imagenet", input_shape=(128, 128, 3))
    photos, _ = images.load_folder(shared_images)
    cat = next(p for p in photos if p.path.name.startswith("cat_openimages_02b4"))
    x = backbones.preprocess_input("mobilenet_025")(images.to_batch([cat.rgb], 128))
    return model, cam.find_layer(model), x


def keras_io(img_array, model, layer, pred_index=None):  # the notebook's solution, as keras-io writes it
    grad_model = keras.Model(model.input, [model.get_layer(layer).output, model.output])
    with tf.GradientTape() as tape:
        conv, preds = grad_model(img_array)
        if pred_index is None:
            pred_index = tf.argmax(preds[0])
        score = preds[:, pred_index]
    grads = tape.gradient(score, conv)
    weights = tf.reduce_mean(grads, axis=(0, 1, 2))
    heatmap = tf.nn.relu(tf.reduce_sum(conv[0] * weights, axis=-1))
    return heatmap / tf.reduce_max(heatmap)


def cut_at_layer(img_array, model, layer, pred_index=None):  # another valid graph: watch the layer output itself
    conv_model = keras.Model(model.input, model.get_layer(layer).output)
    conv = conv_model(img_array)
    top = keras.Model(model.get_layer(layer).output, model.output)
    with tf.GradientTape() as tape:
        tape.watch(conv)
        preds = top(conv)
        index = int(np.argmax(preds[0])) if pred_index is None else pred_index
        score = tf.reduce_sum(preds[:, index])
    grads = tape.gradient(score, conv).numpy()[0]
    heatmap = np.maximum((conv.numpy()[0] * grads.mean(axis=(0, 1))).sum(axis=-1), 0)
    return heatmap / heatmap.max()


def mean_over_channels(img_array, model, layer, pred_index=None):  # the wrong axis: one weight per position
    grad_model = keras.Model(model.input, [model.get_layer(layer).output, model.output])
    with tf.GradientTape() as tape:
        conv, preds = grad_model(img_array)
        score = preds[:, tf.argmax(preds[0])]
    grads = tape.gradient(score, conv)
    weights = tf.reduce_mean(grads, axis=-1, keepdims=True)
    heatmap = tf.nn.relu(tf.reduce_sum(conv[0] * weights[0], axis=-1))
    return heatmap / tf.reduce_max(heatmap)


def no_relu(img_array, model, layer, pred_index=None):
    heatmap = _unnormalised(img_array, model, layer, pred_index)
    return heatmap / np.abs(heatmap).max()


def not_normalised(img_array, model, layer, pred_index=None):
    return np.maximum(_unnormalised(img_array, model, layer, pred_index), 0)


def _unnormalised(img_array, model, layer, pred_index, pool=lambda g: tf.reduce_mean(g, axis=(0, 1, 2))):
    grad_model = keras.Model(model.input, [model.get_layer(layer).output, model.output])
    with tf.GradientTape() as tape:
        conv, preds = grad_model(img_array)
        score = preds[:, tf.argmax(preds[0]) if pred_index is None else pred_index]
    grads = tape.gradient(score, conv)
    return tf.reduce_sum(conv[0] * pool(grads), axis=-1).numpy()


def _relu_max(heatmap):
    heatmap = np.maximum(heatmap, 0)
    return heatmap / heatmap.max() if heatmap.max() > 0 else heatmap


def min_max_no_relu(img_array, model, layer, pred_index=None):  # rescales the negative values instead of cutting
    heatmap = _unnormalised(img_array, model, layer, pred_index)
    return (heatmap - heatmap.min()) / (heatmap.max() - heatmap.min())


def max_of_gradient(img_array, model, layer, pred_index=None):  # the gradient's maximum for its mean
    return _relu_max(_unnormalised(img_array, model, layer, pred_index, lambda g: tf.reduce_max(g, axis=(0, 1, 2))))


def pooled_over_rows(img_array, model, layer, pred_index=None):  # axes (0, 1): a weight per column and channel
    return _relu_max(_unnormalised(img_array, model, layer, pred_index, lambda g: tf.reduce_mean(g, axis=(0, 1))))


def not_pooled(img_array, model, layer, pred_index=None):  # the gradient itself as the weights (axis 0 only)
    return _relu_max(_unnormalised(img_array, model, layer, pred_index, lambda g: tf.reduce_mean(g, axis=0)))


def ignores_pred_index(img_array, model, layer, pred_index=None):  # always the top-1 class
    return keras_io(img_array, model, layer)


def class_zero_by_default(img_array, model, layer, pred_index=None):  # no class given: class 0, not the top-1
    return keras_io(img_array, model, layer, 0 if pred_index is None else pred_index)


def argmax_over_the_batch(img_array, model, layer, pred_index=None):  # tf.argmax(preds): over the batch axis
    grad_model = keras.Model(model.input, [model.get_layer(layer).output, model.output])
    with tf.GradientTape() as tape:
        conv, preds = grad_model(img_array)
        index = tf.argmax(preds)[0] if pred_index is None else pred_index  # the top class of column 0: always 0
        score = preds[:, index]
    weights = tf.reduce_mean(tape.gradient(score, conv), axis=(0, 1, 2))
    heatmap = tf.nn.relu(tf.reduce_sum(conv[0] * weights, axis=-1))
    return heatmap / tf.reduce_max(heatmap)


def divide_no_nan(img_array, model, layer, pred_index=None):  # the notebook's normalisation, numpy, summed weights
    heatmap = np.maximum(_unnormalised(img_array, model, layer, pred_index,
                                       lambda g: tf.reduce_sum(g, axis=(1, 2))[0]), 0)
    return np.divide(heatmap, heatmap.max(), out=np.zeros_like(heatmap), where=heatmap.max() > 0)


@pytest.mark.parametrize("heatmap", [keras_io, cut_at_layer, divide_no_nan])
def test_correct_heatmaps_pass(heatmap, setup):
    model, layer, x = setup
    assert "heatmaps equal labutils'" in check.check_heatmap(heatmap, model, layer, x)
    assert "heatmaps equal labutils'" in check.check_heatmap(heatmap, model, layer, x, class_index=207)  # a dog class


@pytest.mark.parametrize("heatmap, class_index, message", [
    (mean_over_channels, None, r"weights pooled over the wrong axes: the mean over the channels \(axis -1\)"),
    (no_relu, "negative", "apply a ReLU"),
    (no_relu, None, r"class \d+ \(a low score; its map is negative in places\), layer .*: your heatmap has "
                    r"negative values, down to .*: apply a ReLU"),
    (min_max_no_relu, None, r"no ReLU: the negative values were rescaled into \[0, 1\] \(min-max\)"),
    (not_normalised, None, "divide by the maximum"),
    (max_of_gradient, None, r"layer 'conv_pw_13_bn': the channel weights are the gradient's maximum over the "
                            r"positions; Grad-CAM takes its mean"),
    (pooled_over_rows, None, r"weights pooled over the wrong axes: over the rows only \(axes 0 and 1\)"),
    (not_pooled, None, "the gradient is not pooled: it weights every position and channel itself"),
    (ignores_pred_index, None, "the heatmap explains the top-1 class, not the class asked for: use pred_index"),
    (class_zero_by_default, None, r"with no class given \(pred_index=None\), your heatmap is not the top-1"),
    (argmax_over_the_batch, None, r"with no class given \(pred_index=None\), your heatmap is not the top-1"),
])
def test_wrong_heatmaps_fail_saying_what_differs(heatmap, class_index, message, setup):
    model, layer, x = setup
    if class_index == "negative":  # a class some positions of this photo count against: a ReLU matters there
        scores = cam.class_scores_model(model)
        class_index = next(c for c in range(0, 1000, 7) if _unnormalised(x, scores, layer, c).min() < -1e-3)
    with pytest.raises(SelfCheckError, match=message):
        check.check_heatmap(heatmap, model, layer, x, class_index=class_index)
