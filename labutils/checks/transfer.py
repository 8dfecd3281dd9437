"""Self-checks of notebook 03's exercises: the transfer model's structure, and what each phase trains.

The model is judged by its structure and its response, not by the names of incidental
layers: a sub-model named ``conv_base`` (the backbone without its top) called with
``training=False``, fed the raw pixels through the backbone's own ``preprocess_input``
(judged on flat-coloured images, which any resizing leaves flat, so that every way
of resizing passes), then layers that map its features to one cat probability; in
phase 1 only those head layers train; in phase 2 also the chosen ``conv_base``
layers, BatchNormalization excepted. Freezing by ``conv_base.trainable = False``
or by a loop over its layers are both right.
"""
from __future__ import annotations

import re

import keras
import numpy as np

from labutils import backbones, config, models, surgery
from labutils.checks import SelfCheckError, passed, relative_error

# Flat images (one RGB colour each, 0-255): resizing keeps them flat, so conv_base's input must be
# preprocess_input of these colours at every position, whatever the interpolation.
COLOURS = np.array([[0, 0, 0], [255, 255, 255], [200, 120, 30], [20, 90, 240]], dtype=np.float32)
PREPROCESS_TOLERANCE = 1e-4  # relative error; float32 round-off of resizing a flat image is ~1e-7
# What a student may feed conv_base instead of its own preprocess_input: (mistake, fix), and the values.
WRONG_PREPROCESSING = {
    "the raw pixels 0-255": lambda x: x,
    "pixels scaled to [0, 1] (Rescaling(1/255)?)": lambda x: x / 255.0,
    "pixels scaled to [-1, 1] (x / 127.5 - 1, MobileNet's and Inception's preprocessing)": lambda x: x / 127.5 - 1,
    "pixels preprocessed as Caffe-trained models want them (BGR, ImageNet mean subtracted: ResNet's and VGG's)":
        lambda x: keras.applications.imagenet_utils.preprocess_input(x.copy(), mode="caffe"),
    "pixels preprocessed as PyTorch-trained models want them (scaled to [0, 1], ImageNet mean and std)":
        lambda x: keras.applications.imagenet_utils.preprocess_input(x.copy(), mode="torch"),
}


def conv_base_of(model: keras.Model) -> keras.Model:
    """The sub-model named ``conv_base`` (a SelfCheckError saying so if there is none)."""
    try:
        conv_base = model.get_layer(models.CONV_BASE)
    except ValueError:
        raise SelfCheckError(f"{model.name} has no layer named {models.CONV_BASE!r}: build the backbone with "
                             f"name='conv_base' (its layers: {[layer.name for layer in model.layers][:8]}...).") from None
    if not isinstance(conv_base, keras.Model):
        raise SelfCheckError(f"{models.CONV_BASE!r} is a {type(conv_base).__name__}, not a sub-model: call the "
                             f"backbone (a keras.Model) as one layer of the new model.")
    return conv_base


def head_layers(model: keras.Model) -> list[keras.Layer]:
    """The layers after ``conv_base`` that own weights (the new head)."""
    after = model.layers[model.layers.index(conv_base_of(model)) + 1:]
    return [layer for layer in after if layer.weights]


def _trainable(layer: keras.Layer) -> bool:
    return bool(layer.trainable_weights)


def check_model(model: keras.Model, backbone: str, input_size: int) -> str:
    """A sub-model ``conv_base`` without the ImageNet top, called with ``training=False``; a new head
    that turns its features into one probability per image; raw 32x32 pixels in."""
    task = "build_transfer_model"
    conv_base = conv_base_of(model)
    if tuple(model.inputs[0].shape[1:]) != config.IMAGE_SHAPE:
        raise SelfCheckError(f"the model takes {tuple(model.inputs[0].shape[1:])} inputs, expected the raw "
                             f"{config.IMAGE_SHAPE} CIFAR images (resize inside the model).")
    if tuple(conv_base.inputs[0].shape[1:3]) != (input_size, input_size):
        raise SelfCheckError(f"conv_base takes {tuple(conv_base.inputs[0].shape[1:3])} images, expected "
                             f"({input_size}, {input_size}): build it with input_shape=(input_size, input_size, 3).")
    if len(conv_base.outputs[0].shape) != 4 or any(isinstance(layer, keras.layers.Dense) and
                                                   layer.units == 1000 for layer in conv_base.layers):
        raise SelfCheckError("conv_base still has the ImageNet classifier (a 1000-unit top): load the backbone "
                             "with include_top=False, so it ends with its last convolutional features.")
    # How conv_base was called in the model's graph (Keras records each call's arguments on its node).
    calls = [node.arguments.kwargs.get("training") for node in conv_base._inbound_nodes]
    if False not in calls:
        raise SelfCheckError("conv_base is not called with training=False: write conv_base(x, training=False), "
                             "so that its BatchNormalization layers always use their ImageNet statistics.")
    if tuple(model.outputs[0].shape[1:]) != (1,):
        raise SelfCheckError(f"the model's output has shape {tuple(model.outputs[0].shape)}, expected (None, 1): "
                             f"one sigmoid unit, the probability of a cat.")
    if not head_layers(model):
        raise SelfCheckError("no layer with weights after conv_base: graft a new head (e.g. global average "
                             "pooling, dropout, Dense(1, activation='sigmoid')).")
    error = _require_preprocessing(model, conv_base, backbone)
    x = np.random.default_rng(config.SEED).integers(0, 256, (4, *config.IMAGE_SHAPE)).astype("float32")
    p = np.asarray(model(x, training=False))
    if not (np.all(np.isfinite(p)) and np.all((p >= 0) & (p <= 1))):
        raise SelfCheckError(f"the model's outputs {p.ravel()[:4]} are not probabilities in [0, 1]: end with a "
                             f"sigmoid unit.")
    if np.all(p == 1.0):
        raise SelfCheckError("the model says 1.0 (cat) for every image: a softmax over one unit is always 1, "
                             "whatever the input; end with Dense(1, activation='sigmoid').")
    return passed(task, f"conv_base ({backbone}, {len(conv_base.layers)} layers, no top) called with "
                        f"training=False on {backbone}'s preprocess_input of the pixels (relative error {error:.1e}, "
                        f"must stay under {PREPROCESS_TOLERANCE:g}); head of {len(head_layers(model))} layer(s) with weights; "
                        f"{surgery.summary(model)}")


def _conv_base_input(model: keras.Model, conv_base: keras.Model) -> keras.Model:
    """The model from its raw pixels to what it feeds ``conv_base`` (the resizing and preprocessing)."""
    for node in conv_base._inbound_nodes:  # the calls of conv_base; one of them is in the model's graph
        try:
            return keras.Model(model.inputs, node.input_tensors[0])
        except ValueError:  # a call outside the model (e.g. on the backbone's own input)
            continue
    raise SelfCheckError("conv_base is not called on the model's input: call conv_base(x, training=False) on "
                         "the resized, preprocessed pixels inside the model.")


def _require_preprocessing(model: keras.Model, conv_base: keras.Model, backbone: str) -> float:
    """Raise unless flat-coloured 32x32 images reach ``conv_base`` as ``backbone``'s ``preprocess_input``
    of their colours (float32 ``(4, 3)``, compared by relative error), naming a likely mistake; return the error."""
    flat = np.broadcast_to(COLOURS[:, None, None, :], (len(COLOURS), *config.IMAGE_SHAPE)).copy()
    fed = np.asarray(_conv_base_input(model, conv_base)(flat, training=False), dtype=np.float64)
    got = fed.reshape(len(COLOURS), -1, fed.shape[-1]).mean(axis=1)  # one value per image and channel
    expected = np.asarray(backbones.preprocess_input(backbone)(COLOURS.copy()), dtype=np.float64)
    error = relative_error(got, expected)
    if got.shape == expected.shape and error <= PREPROCESS_TOLERANCE:
        return error
    if got.shape != expected.shape:
        raise SelfCheckError(f"conv_base receives {fed.shape[-1]} channels per position, expected 3 (RGB).")
    mistakes = [name for name, wrong in WRONG_PREPROCESSING.items() if relative_error(wrong(COLOURS), expected) >
                PREPROCESS_TOLERANCE and relative_error(got, wrong(COLOURS)) <= PREPROCESS_TOLERANCE]
    if relative_error(got, backbones.preprocess_input(backbone)(expected.astype(np.float32))) <= PREPROCESS_TOLERANCE:
        mistakes.append(f"pixels through {backbone}'s preprocess_input twice")
    image, channel = np.unravel_index(int(np.argmax(np.abs(got - expected))), got.shape)
    raise SelfCheckError(f"conv_base receives {mistakes[0] if mistakes else 'other values than it expects'}: for a flat "
                         f"RGB {COLOURS[image].astype(int).tolist()} image, channel {channel} is {got[image, channel]:.4g}, "
                         f"{backbone}'s preprocess_input gives {expected[image, channel]:.4g} (relative error {error:.1e}, "
                         f"must stay under {PREPROCESS_TOLERANCE:g}). Feed conv_base the resized pixels (0-255) through "
                         f"{backbone}'s own preprocess_input (models.BackbonePreprocess({backbone!r})), exactly once.")


def _require_head_trains(model: keras.Model, why: str) -> None:
    frozen_head = [layer.name for layer in head_layers(model) if not _trainable(layer)]
    if frozen_head:
        raise SelfCheckError(f"head layer(s) {frozen_head} are frozen: {why}.")


def check_phase1(model: keras.Model) -> str:
    """Only the head trains: no trainable weight in ``conv_base``, every head weight trainable."""
    task = "freeze_conv_base"
    conv_base = conv_base_of(model)
    training = [layer.name for layer in surgery.layers(conv_base) if not isinstance(layer, keras.Model)
                and _trainable(layer)]
    if training:
        kinds = sorted({type(layer).__name__ for layer in surgery.layers(conv_base) if layer.name in training})
        raise SelfCheckError(f"{len(training)} conv_base layers would still train in phase 1, e.g. {training[:3]} "
                             f"(kinds: {', '.join(kinds)}): freeze all of conv_base, every kind of layer "
                             f"(conv_base.trainable = False).")
    _require_head_trains(model, "phase 1 trains the head")
    counts = surgery.counts(model)
    return passed(task, f"only the head trains: {counts['trainable']:,} trainable parameters, "
                        f"{counts['frozen']:,} frozen (all of conv_base)")


def check_phase2(model: keras.Model, pattern: str) -> str:
    """The ``conv_base`` layers whose name matches ``pattern`` train, BatchNormalization excepted; the
    other ``conv_base`` layers stay frozen; the head still trains."""
    task = "unfreeze_top"
    conv_base = conv_base_of(model)
    wrong = []
    for layer in surgery.layers(conv_base):
        if isinstance(layer, keras.Model) or not layer.weights:
            continue
        should = bool(re.search(pattern, layer.name)) and not isinstance(layer, keras.layers.BatchNormalization)
        if _trainable(layer) != should:
            wrong.append((layer.name, type(layer).__name__, should))
    if wrong:
        name, kind, should = wrong[0]
        why = ("BatchNormalization stays frozen: its ImageNet statistics must not be overwritten"
               if kind == "BatchNormalization" else f"it matches {pattern!r}, so it should train" if should else
               f"only layers matching {pattern!r} train in phase 2")
        raise SelfCheckError(f"conv_base layer {name!r} ({kind}) is {'frozen' if should else 'trainable'}: {why} "
                             f"({len(wrong)} layer(s) differ).")
    _require_head_trains(model, "the head keeps training in phase 2")
    names = surgery.trainable_layers(conv_base)
    return passed(task, f"{len(names)} conv_base layers train ({names[0]} ... {names[-1]}), BatchNormalization "
                        f"frozen; {surgery.summary(model)}" if names else f"no conv_base layer matches {pattern!r}")
