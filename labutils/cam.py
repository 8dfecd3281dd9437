"""Grad-CAM heatmaps for Keras image classifiers, batched, in TensorFlow 2 eager mode.

Grad-CAM (Selvaraju et al., 2017) answers "where did the network look to say
class c?": the gradients of the score of c with respect to a convolutional
layer's output ``A`` (shape ``(h, w, K)``), averaged over positions, weight
the ``K`` channels; the weighted sum of the channels, through a ReLU and
scaled to [0, 1], is an ``(h, w)`` heatmap. ``tf.GradientTape`` records the
forward pass as it runs, so none of TensorFlow 1's symbolic machinery
(``K.gradients``, a session, ``disable_eager_execution``) is needed.

``GradCAM(model)`` splits the model at that layer into a *trunk* (input to
``A``) and a *head* (``A`` to the class scores). The trunk runs once per batch,
outside the tape; only the small head is recorded and differentiated, once
for all targets at once, which keeps a batch of heatmaps close to the cost of
one forward pass. The whole step runs as one ``tf.function`` graph.

A *target* is what a heatmap explains: ``None`` for each image's own top-1
class, or a tuple of class indices (one class, or a group such as the five
ImageNet domestic cats). The score of a group is the log of the sum of the
exponentiated pre-softmax scores (logits) of its classes, which for one class
is its logit, the score Grad-CAM uses.
"""
from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from labutils import assets, backbones, config

TOP1 = "top1"
Targets = dict[str, tuple[int, ...] | None]


def targets(extra: Iterable[str | int] | Mapping[str, Iterable[int]] = ("cat", "dog"), *,
            groups: Mapping[str, Iterable[int]] = config.IMAGENET_GROUPS) -> Targets:
    """Heatmap targets: ``{"top1": None}`` then one entry per extra class or group.

    ``extra``: group names from ``groups`` (``"cat"``, ``"dog"``), class indices
    (``207`` gives target ``"class207"``), or a mapping ``{name: class indices}``.
    """
    chosen: Targets = {TOP1: None}
    items = extra.items() if isinstance(extra, Mapping) else ((item, None) for item in extra)
    for key, classes in items:
        if classes is not None:
            chosen[str(key)] = tuple(int(c) for c in classes)
        elif isinstance(key, (int, np.integer)):
            chosen[f"class{int(key)}"] = (int(key),)
        elif key in groups:
            chosen[key] = tuple(groups[key])
        else:
            raise ValueError(f"Unknown class group {key!r}: use one of {sorted(groups)}, "
                             f"a class index, or a mapping {{name: [class indices]}}.")
    return chosen


def find_layer(model: keras.Model) -> str:
    """The name of the last layer with a spatial (4-D, more than 1x1) output that alone decides the output.

    Pooling layers are passed over (they only coarsen the convolution before
    them), and so are layers the model's output does not depend on through
    them alone (e.g. one branch of two).
    """
    return _search(model)[0]


def _search(model: keras.Model) -> tuple[str, tuple[keras.Model, keras.Model]]:
    for layer in reversed(model.layers):
        if isinstance(layer, keras.layers.InputLayer) or "Pooling" in type(layer).__name__:
            continue
        try:
            shape = layer.output.shape
        except (AttributeError, ValueError):  # a layer used more than once has no single output
            continue
        if len(shape) != 4 or (shape[1] is not None and shape[2] is not None and shape[1] * shape[2] <= 1):
            continue
        try:
            return layer.name, _split(model, layer.name)
        except ValueError:
            continue
    raise ValueError(f"Model {model.name!r} has no convolutional layer with a spatial output to explain; "
                     "pass `layer=` explicitly.")


def _logits(model: keras.Model):
    """The model's pre-softmax (or pre-sigmoid) output tensor; the output itself when it has none."""
    last, output = model.layers[-1], model.outputs[0]
    activation = getattr(last, "activation", None)
    if last.output is not output or activation not in (keras.activations.softmax, keras.activations.sigmoid):
        return output
    if isinstance(last, keras.layers.Activation):
        return last.input
    # A twin of the last layer without its activation, holding a copy of its weights.
    twin = type(last).from_config({**last.get_config(), "activation": "linear", "name": f"{last.name}_logits"})
    logits = twin(last.input)
    twin.set_weights(last.get_weights())
    return logits


def class_scores_model(model: keras.Model) -> keras.Model:
    """``model`` with its class *scores* as output: the pre-softmax logits Grad-CAM differentiates.

    Built from the layers of ``model``'s own graph (the last layer's twin without its softmax shares
    its weights by value), so ``model.get_layer(name).output`` of any inner layer still connects to it.
    """
    return keras.Model(model.inputs[0], _logits(model), name=f"{model.name}_scores")


def _split(model: keras.Model, layer: str) -> tuple[keras.Model, keras.Model]:
    """``trunk``: input -> layer output; ``head``: layer output -> [logits, probabilities].

    Raises ``ValueError`` when the output depends on more than that layer's output.
    """
    if len(model.inputs) != 1 or len(model.outputs) != 1:
        raise ValueError("Grad-CAM here needs a model with one input and one output.")
    features = model.get_layer(layer).output
    try:
        head = keras.Model(features, [_logits(model), model.outputs[0]])
    except ValueError as err:
        raise ValueError(f"The output of {model.name!r} depends on more than layer {layer!r} (a skip "
                         f"connection or another branch goes around it): name a layer that ends a "
                         f"block, or pass layer=None to find one. ({err})") from err
    trunk = keras.Model(model.inputs[0], features)
    return trunk, head


class GradCAM:
    """Grad-CAM for ``model`` at convolutional layer ``layer`` (default: :func:`find_layer`).

    ``model``: a Keras classifier with one image input (channels last) and one
    output of class scores, e.g. any ``keras.applications`` model with its top.
    """

    def __init__(self, model: keras.Model, layer: str | None = None):
        if layer is None:
            self.layer, (self.trunk, self.head) = _search(model)
        else:
            self.layer, (self.trunk, self.head) = layer, _split(model, layer)
        self.num_classes = int(self.head.outputs[0].shape[-1])
        # tf.function traces each step once into a graph (still no Session, no
        # disable_eager_execution): several times faster than op-by-op on a CPU.
        self._step = tf.function(self._heatmaps, reduce_retracing=True)

    def _class_masks(self, chosen: Targets) -> tuple[np.ndarray, np.ndarray]:
        """bool ``(T, num_classes)``: the classes each target scores; bool ``(T,)``: targets meaning top-1."""
        fixed = np.zeros((len(chosen), self.num_classes), bool)
        for row, classes in enumerate(chosen.values()):
            if classes is None:
                continue
            if not classes or min(classes) < 0 or max(classes) >= self.num_classes:
                raise ValueError(f"Class indices {classes} out of range 0-{self.num_classes - 1}.")
            fixed[row, list(classes)] = True
        return fixed, np.array([classes is None for classes in chosen.values()])

    def _heatmaps(self, x: tf.Tensor, fixed: tf.Tensor, top1: tf.Tensor):
        """Probabilities ``(B, C)`` and heatmaps ``(T, B, h, w)`` for images ``x``; masks from :meth:`_class_masks`."""
        features = self.trunk(x, training=False)  # outside the tape: the trunk is never differentiated
        batch, targets = tf.shape(features)[0], tf.shape(fixed)[0]
        # One head pass for every target: the features, repeated once per target.
        tiled = tf.tile(features, [targets, 1, 1, 1])  # (T * B, h, w, K)
        with tf.GradientTape() as tape:
            tape.watch(tiled)
            logits, probs = self.head(tiled, training=False)
            best = tf.one_hot(tf.argmax(logits[:batch], axis=-1), self.num_classes) > 0  # (B, C)
            masks = tf.where(top1[:, None, None], best[None], fixed[:, None, :])  # (T, B, C)
            masks = tf.reshape(masks, [-1, self.num_classes])
            # Images are independent in inference mode, so the gradient of the
            # sum is each image's own gradient.
            score = tf.reduce_sum(tf.reduce_logsumexp(tf.where(masks, logits, -np.inf), axis=-1))
        grads = tape.gradient(score, tiled)
        weights = tf.reduce_mean(grads, axis=(1, 2), keepdims=True)  # (T * B, 1, 1, K)
        cams = tf.nn.relu(tf.reduce_sum(weights * tiled, axis=-1))  # (T * B, h, w)
        cams = tf.math.divide_no_nan(cams, tf.reduce_max(cams, axis=(1, 2), keepdims=True))
        return probs[:batch], tf.reshape(cams, tf.concat([[targets, batch], tf.shape(cams)[1:]], 0))

    def __call__(self, x: np.ndarray | tf.Tensor,
                 chosen: Targets | None = None) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        """Probabilities and heatmaps for one batch.

        ``x``: float32 ``(B, H, W, 3)``, already through the model's
        ``preprocess_input``. ``chosen``: see :func:`targets` (default: top-1 only).
        Returns the model's output, float32 ``(B, num_classes)``, and for each
        target a float32 ``(B, h, w)`` heatmap at the layer's resolution, each
        map scaled to [0, 1] (all zeros where no position counts for the class).
        """
        chosen = chosen or {TOP1: None}
        fixed, top1 = self._class_masks(chosen)
        probs, cams = self._step(tf.convert_to_tensor(x, tf.float32), tf.constant(fixed), tf.constant(top1))
        cams = cams.numpy()
        return probs.numpy(), {name: cams[i] for i, name in enumerate(chosen)}


def explain(cam: GradCAM, x: np.ndarray, chosen: Targets | None = None,
            batch_size: int = config.CAM_BATCH_SIZE) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """:meth:`GradCAM.__call__` over ``x`` in batches of ``batch_size``, results concatenated."""
    chosen = chosen or {TOP1: None}
    parts = [cam(x[i:i + batch_size], chosen) for i in range(0, len(x), batch_size)]
    if not parts:
        height, width = (d or 0 for d in cam.trunk.outputs[0].shape[1:3])
        return (np.zeros((0, cam.num_classes), np.float32),
                {name: np.zeros((0, height, width), np.float32) for name in chosen})
    return (np.concatenate([p for p, _ in parts]),
            {name: np.concatenate([maps[name] for _, maps in parts]) for name in chosen})


def group_scores(probs: np.ndarray, chosen: Targets) -> dict[str, np.ndarray]:
    """Each class group's probability, the sum of its classes': float ``(N,)`` per target (top-1 left out)."""
    return {name: probs[:, list(classes)].sum(axis=-1) for name, classes in chosen.items() if classes is not None}


def top_labels(backbone: str, probs: np.ndarray, k: int = 3) -> list[list[tuple[str, str, float]]]:
    """The ``k`` best ``(wnid, label, probability)`` per image, by the backbone's ``decode_predictions``.

    ``decode_predictions`` needs ImageNet's class index from Keras' cache (or
    the network). Missing, it raises :class:`labutils.assets.AssetMissingError`
    naming the file and where it goes, except when the current profile
    (:func:`labutils.config.current_profile`) has ``stand_ins_if_offline`` (smoke), which says so
    and labels classes by index ("class 281") instead.
    """
    if not len(probs):
        return []
    try:
        return backbones.decode_predictions(backbone)(probs, top=k)
    except assets.AssetMissingError as err:
        if not config.current_profile().stand_ins_if_offline:
            raise
        print(f"{str(err).splitlines()[0]}\n  Labelling classes by index instead.")
    best = np.argsort(probs, axis=-1)[:, ::-1][:, :k]
    return [[(f"class{c}", f"class {c}", float(p[c])) for c in row] for p, row in zip(probs, best)]


def summary(photos: list, top: list, scores: dict[str, np.ndarray],
            files: list[dict[str, Path]], root: Path = config.ROOT) -> list[dict]:
    """One JSON-ready row per photo: image, top-k labels, class-group probabilities, overlay files.

    ``photos``: :class:`labutils.images.Photo` list; ``top``: what
    ``decode_predictions`` returns for them; ``scores``: from :func:`group_scores`;
    ``files``: from :func:`labutils.overlay.write_overlays`. Paths are relative to ``root``.
    """
    def relative(path: Path) -> str:
        return str(path.relative_to(root)) if path.is_relative_to(root) else str(path)

    return [{"image": photo.path.name,
             "top3": [{"wnid": wnid, "label": label, "probability": round(float(p), 4)} for wnid, label, p in labels],
             "groups": {name: round(float(values[i]), 4) for name, values in scores.items()},
             "overlays": {target: relative(path) for target, path in written.items()}}
            for i, (photo, labels, written) in enumerate(zip(photos, top, files))]


def table(rows: list[dict]) -> list[dict]:
    """:func:`summary` rows flattened for a ``pandas.DataFrame``: image, top-3, one column per group."""
    return [{"image": row["image"],
             "top-3": ", ".join(f"{t['label']} {t['probability']:.2f}" for t in row["top3"]),
             **{f"{name} group": score for name, score in row["groups"].items()}} for row in rows]
