"""The two cat-vs-not-cat networks of the lab, both ending in one sigmoid unit.

Both models take raw pixels: float32 or uint8 values 0-255, shape (B, 32, 32, 3),
as ``tfrecords.dataset(..., preprocess=None)`` and the in-RAM arrays give them.
Scaling happens inside the model, so a saved model works on raw images.
Output: (B, 1) float32, the probability that the image is a cat.

* :func:`lab4_cnn`: the small from-scratch CNN of Lab 4.
* :func:`transfer_model`: input -> ``resize`` -> ``preprocess`` (the backbone's own
  ``preprocess_input``) -> ``conv_base`` (the backbone, ``include_top=False``) ->
  ``pool`` (global average pooling: the bottleneck) -> ``head`` (dropout, sigmoid).
"""
from __future__ import annotations

from pathlib import Path

import keras

from labutils import backbones, config, course, surgery

CONV_BASE = course.CONV_BASE
BOTTLENECK = "pool"  # the layer whose output bottleneck caching stores
HEAD = "head"


def lab4_cnn(input_shape: tuple[int, int, int] = config.IMAGE_SHAPE,
             filters: tuple[int, ...] = (32, 64, 128), dropout: float = 0.25,
             head_dropout: float = 0.3) -> keras.Model:
    """A plain small CNN: ``len(filters)`` blocks of two 3x3 convolutions (each followed by batch
    normalization and a ReLU), max pooling and dropout, then global average pooling, dropout and
    one sigmoid unit.

    Pixels are scaled to [0, 1] by its first layer, then augmented while training only (random
    horizontal flips and shifts, ``config.AUGMENT``): both happen inside the model, so arrays in RAM
    and TFRecords feed it the same raw pixels. Global average pooling (one number per feature
    map) in place of Lab 4's Flatten + Dense leaves the head one weight per feature map instead of
    a dense layer over every position of every map, which a few thousand training images cannot pin down.
    """
    inputs = keras.Input(input_shape, name="pixels")
    x = keras.layers.Rescaling(1 / 255, name="scale")(inputs)
    x = keras.layers.RandomFlip(config.AUGMENT["flip"], seed=config.SEED, name="flip")(x)
    shift = config.AUGMENT["translate"]
    x = keras.layers.RandomTranslation(shift, shift, fill_mode="reflect", seed=config.SEED, name="shift")(x)
    for block, n in enumerate(filters, start=1):
        for conv in (1, 2):
            # No bias: the batch normalization right after has its own shift.
            x = keras.layers.Conv2D(n, 3, padding="same", use_bias=False, name=f"block{block}_conv{conv}")(x)
            x = keras.layers.BatchNormalization(name=f"block{block}_bn{conv}")(x)
            x = keras.layers.ReLU(name=f"block{block}_relu{conv}")(x)
        x = keras.layers.MaxPooling2D(name=f"block{block}_pool")(x)
        x = keras.layers.Dropout(dropout, name=f"block{block}_dropout")(x)
    x = keras.layers.GlobalAveragePooling2D(name="pool")(x)
    x = keras.layers.Dropout(head_dropout, name="head_dropout")(x)
    outputs = keras.layers.Dense(1, activation="sigmoid", name="cat")(x)
    return keras.Model(inputs, outputs, name="lab4_cnn")


@keras.saving.register_keras_serializable(package="labutils")
class BackbonePreprocess(keras.layers.Layer):
    """The backbone's own ``preprocess_input`` as a layer: float RGB 0-255 in, what ``conv_base`` expects out."""

    def __init__(self, backbone: str, **kwargs):
        super().__init__(**kwargs)
        self.backbone = backbone
        self._preprocess = backbones.preprocess_input(backbone)

    def call(self, inputs):
        return self._preprocess(inputs)

    def get_config(self) -> dict:
        return {**super().get_config(), "backbone": self.backbone}


def classifier_head(features: int, dropout: float = 0.2) -> keras.Model:
    """The new top: (B, features) bottleneck vectors -> dropout -> (B, 1) cat probability."""
    return keras.Sequential([keras.Input((features,), name="bottleneck"),
                             keras.layers.Dropout(dropout, name="dropout"),
                             keras.layers.Dense(1, activation="sigmoid", name="cat")], name=HEAD)


def transfer_model(backbone: str = "resnet50", weights: str | Path | None = "imagenet",
                   input_size: int | None = None, dropout: float = 0.2) -> keras.Model:
    """A ``keras.applications`` backbone with a new cat-vs-not-cat head (see the module docstring).

    ``weights``: ``"imagenet"`` (Keras' cache under ``$KERAS_HOME``), ``None`` (random) or the path
    of a weights file of the backbone without its top. ``input_size`` (default: the
    ``transfer_input_size`` of :func:`labutils.config.current_profile`) is the side the 32x32
    images are upsampled to. ``model.weights_used`` tells which weights ``conv_base`` has (see
    :func:`labutils.backbones.build`).
    """
    size = input_size or config.current_profile().transfer_input_size
    conv_base = backbones.build(backbone, include_top=False, weights=weights, input_shape=(size, size, 3),
                                name=CONV_BASE)

    inputs = keras.Input(config.IMAGE_SHAPE, name="pixels")
    x = keras.layers.Resizing(size, size, interpolation="bilinear", name="resize")(inputs)
    x = BackbonePreprocess(backbone, name="preprocess")(x)
    # training=False: BatchNormalization stays in inference mode even when layers are unfrozen,
    # so fine-tuning on a few images cannot wreck the ImageNet batch statistics.
    x = conv_base(x, training=False)
    x = keras.layers.GlobalAveragePooling2D(name=BOTTLENECK)(x)
    extractor = keras.Model(inputs, x, name=f"{backbone}_features")
    model = surgery.graft(extractor, classifier_head(x.shape[-1], dropout), name=f"{backbone}_cat")
    model.weights_used = conv_base.weights_used
    return model
