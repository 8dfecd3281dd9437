"""Self-check of notebook 04's exercise: a one-image Grad-CAM heatmap written with ``tf.GradientTape``.

The student's heatmap is compared with :class:`labutils.cam.GradCAM`'s for the same
image, layer and class, after the normalisation the notebook states: the weighted
sum of the layer's channels, through a ReLU, divided by its maximum (so values in
[0, 1], and all zeros when nothing counts for the class). The two compute the same
thing in float32 along different paths (one tape over the whole model, or the
model cut at the layer), so they agree to round-off: the largest difference must
stay under ``TOLERANCE``.
"""
from __future__ import annotations

from typing import Callable

import keras
import numpy as np

from labutils import cam
from labutils.checks import SelfCheckError, largest_difference, passed, relative_error

TOLERANCE = 1e-3  # on values in [0, 1]; float32 round-off along two paths is ~1e-6


def check_heatmap(make_gradcam_heatmap: Callable, model: keras.Model, layer: str, image: np.ndarray,
                  class_index: int | None = None) -> str:
    """Run ``make_gradcam_heatmap(image, scores_model, layer, class_index)`` and compare with labutils'.

    ``model``: the classifier (softmax output); the student's function gets
    :func:`labutils.cam.class_scores_model` of it. ``image``: one preprocessed image
    batch ``(1, H, W, 3)``. ``class_index``: the class explained (default: the top-1 class).
    """
    task = "make_gradcam_heatmap"
    image = np.asarray(image, dtype=np.float32)
    if image.ndim != 4 or image.shape[0] != 1:
        raise ValueError(f"check_heatmap takes one image as a batch (1, H, W, 3), not {image.shape}")
    gradcam = cam.GradCAM(model, layer)
    probs, _ = gradcam(image)
    chosen = int(np.argmax(probs[0])) if class_index is None else int(class_index)
    expected = gradcam(image, {"class": (chosen,)})[1]["class"][0]
    # The class is passed explicitly: with near-equal scores (e.g. random weights) two correct argmaxes
    # could pick different classes.
    yours = np.asarray(make_gradcam_heatmap(image, cam.class_scores_model(model), layer, chosen), dtype=np.float64)
    yours = np.squeeze(yours)
    if yours.shape != expected.shape:
        raise SelfCheckError(f"your heatmap has shape {yours.shape}, expected {expected.shape}: one value per "
                             f"position of layer {layer!r}'s output (sum the weighted channels over the last axis).")
    if not np.all(np.isfinite(yours)):
        raise SelfCheckError("your heatmap has NaN or infinite values: divide by the maximum only when it is above 0.")
    if yours.min() < -1e-6:
        raise SelfCheckError(f"your heatmap goes down to {yours.min():.3g}: apply a ReLU (keep only what pushes the "
                             f"class score up) before normalising.")
    if yours.max() > 1 + 1e-6 or (expected.max() > 0 and yours.max() < 1 - TOLERANCE):
        raise SelfCheckError(f"your heatmap's maximum is {yours.max():.3g}, expected 1: divide by the maximum "
                             f"after the ReLU, so that the values lie in [0, 1].")
    diff, at = largest_difference(yours, expected)
    if diff > TOLERANCE:
        raise SelfCheckError(f"heatmaps differ: largest difference {diff:.3g} at cell {at}: yours {yours[at]:.3f}, "
                             f"reference {expected[at]:.3f} (tolerance {TOLERANCE:g}). Check the channel weights: "
                             f"the mean of the gradient over the positions (axes 1 and 2), one weight per channel.")
    return passed(task, f"class {chosen}, layer {layer!r}: {yours.shape} heatmap equals labutils' (largest "
                        f"difference {diff:.1e}, relative error {relative_error(yours, expected):.1e}; must stay "
                        f"under {TOLERANCE:g})")
