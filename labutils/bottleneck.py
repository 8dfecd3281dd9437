"""Bottleneck caching for phase 1 (the "TensorFlow for Poets" idea).

While ``conv_base`` is frozen, it maps each image to the same bottleneck vector (the output of
the first layer after ``conv_base`` that gives one vector per image, e.g. global average pooling)
every epoch, and that forward pass is nearly all the cost of an epoch. So compute the vectors
once, train the head on them, and the head is ready in the full model: the head trained here
*is* the full model's head (the layers are shared), grafted on ``conv_base`` by construction. No data augmentation can happen in between, which this lab does not use.
"""
from __future__ import annotations

import time
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from labutils import models, surgery, training


def features(extractor: keras.Model, dataset: tf.data.Dataset) -> tuple[np.ndarray, np.ndarray]:
    """Bottleneck vectors float32 ``(N, C)`` and labels float32 ``(N,)`` of every example of a finite
    ``dataset`` of (images, labels) batches, in the dataset's order.
    """
    vectors, labels = [], []
    for images, y, *_ in dataset:
        vectors.append(np.asarray(extractor.predict_on_batch(images), dtype=np.float32))
        labels.append(y.numpy())
    return np.concatenate(vectors), np.concatenate(labels).astype(np.float32)


def bottleneck_layer(model: keras.Model) -> str:
    """The name of the first layer after ``conv_base`` whose output is one vector per image ``(B, C)``."""
    after = model.layers[model.layers.index(model.get_layer(models.CONV_BASE)) + 1:]
    for layer in after:
        if len(layer.output.shape) == 2:
            return layer.name
    raise ValueError(f"{model.name}: no layer after conv_base gives one vector per image (e.g. "
                     f"GlobalAveragePooling2D): the bottleneck cache needs one.")


def train_head(model: keras.Model, train: tf.data.Dataset, validation: tf.data.Dataset, *, epochs: int,
               run_name: str, learning_rate: float, batch_size: int,
               class_weight: dict[int, float] | None = None, checkpoint: Path | None = None,
               verbose: int = 2) -> training.Run:
    """Phase 1 on cached bottlenecks: train ``model``'s head, ``conv_base`` untouched.

    ``train``/``validation``: finite, unshuffled datasets of raw-pixel batches (each image once;
    the head's own ``fit`` shuffles the cached vectors every epoch). Afterwards ``model`` holds
    the best head and its weights are saved to ``checkpoint`` (default: the run's checkpoint),
    where phase 2 continues. ``Run.setup_seconds`` is the time spent computing the cache.
    """
    checkpoint = checkpoint or training.checkpoint_path(run_name)
    bottleneck = bottleneck_layer(model)
    extractor = surgery.cut(model, bottleneck)
    start = time.perf_counter()
    cached_train, cached_val = features(extractor, train), features(extractor, validation)
    cache_seconds = time.perf_counter() - start

    # The layers from the bottleneck to the output, as a model of their own (shared, not copied).
    head = keras.Model(model.get_layer(bottleneck).output, model.outputs[0], name=f"{model.name}_head")
    run = training.fit(head, cached_train, cached_val, epochs=epochs, run_name=run_name,
                       learning_rate=learning_rate, batch_size=batch_size, class_weight=class_weight,
                       checkpoint=checkpoint.with_name(checkpoint.name.replace(".weights.h5", "_head.weights.h5")),
                       verbose=verbose)
    model.save_weights(str(checkpoint))
    run.checkpoint, run.setup_seconds = checkpoint, cache_seconds
    return run
