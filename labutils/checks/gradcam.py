"""Self-check of notebook 04's exercise: a one-image Grad-CAM heatmap written with ``tf.GradientTape``.

The student's heatmap is compared with labutils' for the same image, layer and class:
:class:`labutils.cam.GradCAM`'s split of the model at the layer (trunk up to it, head
from it to the class scores) and its formula, after the normalisation the notebook states: the weighted
sum of the layer's channels, through a ReLU, divided by its maximum (so values in
[0, 1], and all zeros when nothing counts for the class). The two compute the same
thing in float32 along different paths (one tape over the whole model, or the
model cut at the layer), so they agree to round-off: the largest difference must
stay under ``TOLERANCE``.

One top-1 heatmap cannot tell every mistake from the right answer: at a layer that
feeds global average pooling the gradient is the same at every position (so any
pooling of it gives the same weights), and the top-1 class's map is often positive
everywhere (so a missing ReLU changes nothing). The check therefore also explains a
low-scoring class whose map is negative in places, and does so again at the nearest
earlier layer whose gradient varies over positions. A heatmap that differs is
matched against the likely mistakes (no ReLU, weights pooled over the wrong axes,
the gradient's maximum for its mean, ``pred_index`` ignored), which the message names. Last,
the heatmap asked for with no class (``pred_index=None``) must be the top-1 class's.
"""
from __future__ import annotations

from typing import Callable

import keras
import numpy as np
import tensorflow as tf

from labutils import cam
from labutils.checks import SelfCheckError, largest_difference, passed, relative_error

TOLERANCE = 1e-3  # on values in [0, 1]; float32 round-off along two paths is ~1e-6
LOW_CLASSES = 16  # lowest-scoring classes searched for one whose map is both positive and negative
NEGATIVE_SHARE = 0.05  # "negative in places": its minimum below -5 % of its maximum
GRADIENT_VARIES = 1e-3  # relative spread of the gradient over positions below which pooling changes nothing
EARLIER_LAYERS = 12  # layers searched back from the one explained for a gradient that varies
POOL = "average the gradient over the positions (axes 1 and 2 of (1, h, w, channels)): one weight per channel"


def _raw(gradcam: cam.GradCAM, image: np.ndarray, classes: list[int]) -> tuple[np.ndarray, np.ndarray]:
    """The layer's output A, float64 ``(h, w, K)``, and the gradient of each class's score (logit)
    with respect to it, float64 ``(len(classes), h, w, K)``."""
    features = gradcam.trunk(image, training=False)
    tiled = tf.tile(features, [len(classes), 1, 1, 1])  # one copy per class, as GradCAM does
    with tf.GradientTape() as tape:
        tape.watch(tiled)
        logits = gradcam.head(tiled, training=False)[0]
        score = tf.reduce_sum(logits * tf.one_hot(classes, gradcam.num_classes))
    grads = tape.gradient(score, tiled)
    return np.asarray(features[0], np.float64), np.asarray(grads, np.float64)


def _normalised(heatmap: np.ndarray) -> np.ndarray:
    """ReLU, then divided by the maximum (all zeros when the maximum is 0)."""
    heatmap = np.maximum(heatmap, 0)
    top = heatmap.max()
    return heatmap / top if top > 0 else heatmap


def _heatmaps(a: np.ndarray, g: np.ndarray, g_top1: np.ndarray | None) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """The right heatmap ``(h, w)`` for layer output ``a`` ``(h, w, K)`` and gradient ``g`` (same shape),
    and what each likely mistake gives instead: message naming the mistake -> heatmap ``(h, w)``.
    ``g_top1``: the top-1 class's gradient (None: ``g`` is the top-1 class's)."""
    cam_of = lambda weights: (a * weights).sum(axis=-1)
    right = cam_of(g.mean(axis=(0, 1)))
    spread = right.max() - right.min()
    found = {
        f"no ReLU: the negative values were rescaled into [0, 1] (min-max) instead of cut to 0: apply a ReLU, "
        f"then divide by the maximum": (right - right.min()) / spread if spread > 0 else right * 0,
        f"weights pooled over the wrong axes: the mean over the channels (axis -1) gives one weight per "
        f"position; {POOL}": cam_of(g.mean(axis=-1, keepdims=True)),
        f"weights pooled over the wrong axes: over the rows only (axes 0 and 1); {POOL}": cam_of(g.mean(axis=0)),
        f"weights pooled over the wrong axes: over the columns only (axes 0 and 2); {POOL}":
            cam_of(g.mean(axis=1, keepdims=True)),
        f"weights pooled over the wrong axes: over every axis, one weight for all channels; {POOL}": cam_of(g.mean()),
        f"the gradient is not pooled: it weights every position and channel itself; {POOL}": cam_of(g),
        f"the channel weights are the gradient's maximum over the positions; Grad-CAM takes its mean: {POOL}":
            cam_of(g.max(axis=(0, 1))),
    }
    if g_top1 is not None:
        found["the heatmap explains the top-1 class, not the class asked for: use pred_index when it is given"] = \
            cam_of(g_top1.mean(axis=(0, 1)))
    return _normalised(right), {name: h if name.startswith("no ReLU") else _normalised(h) for name, h in found.items()}


def _varies(g: np.ndarray) -> bool:
    """Whether gradient ``g`` ``(h, w, K)`` differs from one position to another (beyond round-off)."""
    return float(np.abs(g - g.mean(axis=(0, 1))).max()) > GRADIENT_VARIES * float(np.abs(g).max() + 1e-30)


# A heatmap to ask for: the layer's GradCAM, the class, what it is, the right heatmap and the mistakes'.
Case = tuple[cam.GradCAM, int, str, np.ndarray, dict[str, np.ndarray]]


def _layer_cases(gradcam: cam.GradCAM, image: np.ndarray, chosen: int, top1: int, low: list[int],
                 with_chosen: bool) -> tuple[list[Case], bool]:
    """Cases at ``gradcam``'s layer: class ``chosen`` (``with_chosen``, or when no low class fits) and the
    first of ``low`` whose map is negative in places; and whether the gradient varies over positions there."""
    a, g = _raw(gradcam, image, [chosen, top1, *low])
    other = lambda c: None if c == top1 else g[1]
    cases = [(gradcam, chosen, f"class {chosen}", *_heatmaps(a, g[0], other(chosen)))] if with_chosen else []
    for c, g_c in zip(low, g[2:]):
        heatmap = (a * g_c.mean(axis=(0, 1))).sum(axis=-1)
        if heatmap.max() > 0 and heatmap.min() < -NEGATIVE_SHARE * heatmap.max():
            cases.append((gradcam, c, f"class {c} (a low score; its map is negative in places)", *_heatmaps(a, g_c, g[1])))
            break
    if not cases and (a * g[0].mean(axis=(0, 1))).sum(axis=-1).max() > 0:
        cases.append((gradcam, chosen, f"class {chosen}", *_heatmaps(a, g[0], other(chosen))))
    return cases, _varies(g[0])


def _earlier_cases(model: keras.Model, layer: str, image: np.ndarray, chosen: int, top1: int,
                   low: list[int]) -> list[Case]:
    """:func:`_layer_cases` at the nearest layer before ``layer`` with a spatial output, that alone decides the
    output and whose gradient varies over positions (none if there is none within ``EARLIER_LAYERS``)."""
    index = [candidate.name for candidate in model.layers].index(layer)
    for candidate in reversed(model.layers[max(0, index - EARLIER_LAYERS):index]):
        shape = candidate.output.shape
        if isinstance(candidate, keras.layers.InputLayer) or len(shape) != 4 or (shape[1] or 2) * (shape[2] or 2) <= 1:
            continue
        try:
            gradcam = cam.GradCAM(model, candidate.name)
        except ValueError:  # a skip connection goes around it
            continue
        cases, varies = _layer_cases(gradcam, image, chosen, top1, low, with_chosen=False)
        if varies:
            return cases
    return []


def _compare(yours, expected: np.ndarray, mistakes: dict[str, np.ndarray], where: str) -> None:
    """Raise naming what differs between the student's heatmap and labutils' ``expected`` ``(h, w)``
    at ``where`` (beyond ``TOLERANCE``)."""
    yours = np.squeeze(np.asarray(yours, dtype=np.float64))
    if yours.shape != expected.shape:
        raise SelfCheckError(f"{where}: your heatmap has shape {yours.shape}, expected {expected.shape}: one value "
                             f"per position of the layer's output (sum the weighted channels over the last axis).")
    if not np.all(np.isfinite(yours)):
        raise SelfCheckError(f"{where}: your heatmap has NaN or infinite values: divide by the maximum only when it "
                             f"is above 0.")
    if yours.min() < -1e-6:
        raise SelfCheckError(f"{where}: your heatmap has negative values, down to {yours.min():.3g}: apply a ReLU "
                             f"(keep only what pushes the class score up) before normalising.")
    diff, at = largest_difference(yours, expected)
    if diff <= TOLERANCE:
        return
    # Mistakes that give this heatmap here (several may, e.g. when they all give zeros), nearest first.
    named = sorted((name for name, wrong in mistakes.items() if largest_difference(yours, wrong)[0] <= TOLERANCE
                    and largest_difference(wrong, expected)[0] > TOLERANCE),
                   key=lambda name: largest_difference(yours, mistakes[name])[0])
    named = ["; or ".join(named)] if named else []
    if not named and (yours.max() > 1 + 1e-6 or (expected.max() > 0 and yours.max() < 1 - TOLERANCE)):
        named = [f"your heatmap's maximum is {yours.max():.3g}, expected 1: divide by the maximum after the ReLU, "
                 f"so that the values lie in [0, 1]"]
    raise SelfCheckError(f"{where}: {named[0] if named else 'heatmaps differ'}. Largest difference from labutils' "
                         f"{diff:.3g} at cell {at}: yours {yours[at]:.3f}, reference {expected[at]:.3f} (tolerance "
                         f"{TOLERANCE:g})." + ("" if named else f" Check the channel weights: {POOL}."))


def _default_class(make_gradcam_heatmap: Callable, scores: keras.Model, image: np.ndarray, gradcam: cam.GradCAM,
                   probs: np.ndarray) -> tuple[str, np.ndarray, np.ndarray] | None:
    """Ask for a heatmap with no class (``pred_index`` left at None) and compare it with the top-1 class's
    (``probs``: the model's class probabilities of ``image``): what was explained, the student's heatmap and
    labutils'; None when two classes tie for the top score (no single right answer)."""
    top = np.sort(probs)
    if top[-1] - top[-2] <= 1e-4 * top[-1]:
        return None
    top1 = int(np.argmax(probs))
    a, g = _raw(gradcam, image, [top1])
    expected, _ = _heatmaps(a, g[0], None)
    yours = np.squeeze(np.asarray(make_gradcam_heatmap(image, scores, gradcam.layer), dtype=np.float64))
    if yours.shape != expected.shape or largest_difference(yours, expected)[0] > TOLERANCE:
        raise SelfCheckError(f"with no class given (pred_index=None), your heatmap is not the top-1 class's "
                             f"({top1}): take the class with the highest score of this image, "
                             f"tf.argmax(preds[0]), not of the whole batch axis and not a fixed class.")
    return f"the top-1 class {top1} with pred_index=None at {gradcam.layer!r}", yours, expected


def check_heatmap(make_gradcam_heatmap: Callable, model: keras.Model, layer: str, image: np.ndarray,
                  class_index: int | None = None) -> str:
    """Run ``make_gradcam_heatmap(image, scores_model, layer, class_index)`` and compare with labutils'.

    ``model``: the classifier (softmax output); the student's function gets
    :func:`labutils.cam.class_scores_model` of it. ``image``: one preprocessed image
    batch ``(1, H, W, 3)``. ``class_index``: the class explained (default: the top-1 class);
    a low-scoring class, and an earlier layer when the gradient at ``layer`` is the same at every
    position, are explained too (see the module docstring).
    """
    task = "make_gradcam_heatmap"
    image = np.asarray(image, dtype=np.float32)
    if image.ndim != 4 or image.shape[0] != 1:
        raise ValueError(f"check_heatmap takes one image as a batch (1, H, W, 3), not {image.shape}")
    gradcam = cam.GradCAM(model, layer)
    probs = np.asarray(model(image, training=False))[0]
    top1 = int(np.argmax(probs))
    chosen = top1 if class_index is None else int(class_index)
    low = [int(c) for c in np.argsort(probs)[:LOW_CLASSES] if c != chosen]
    cases, varies = _layer_cases(gradcam, image, chosen, top1, low, with_chosen=True)
    cases += [] if varies else _earlier_cases(model, layer, image, chosen, top1, low)
    scores, compared = cam.class_scores_model(model), []
    for case_cam, c, what, expected, mistakes in cases:
        # The class is passed explicitly: with near-equal scores (e.g. random weights) two correct argmaxes
        # could pick different classes.
        yours = make_gradcam_heatmap(image, scores, case_cam.layer, c)
        _compare(yours, expected, mistakes, f"{what}, layer {case_cam.layer!r}")
        compared.append((f"{what} at {case_cam.layer!r}", np.squeeze(np.asarray(yours, np.float64)), expected))
    compared += [found for found in [_default_class(make_gradcam_heatmap, scores, image, gradcam, probs)] if found]
    worst = max(largest_difference(yours, expected)[0] for _, yours, expected in compared)
    error = max(relative_error(yours, expected) for _, yours, expected in compared)
    return passed(task, f"{len(compared)} heatmaps equal labutils' ({'; '.join(w for w, _, _ in compared)}): "
                        f"largest difference {worst:.1e}, relative error {error:.1e}; must stay under {TOLERANCE:g}")
