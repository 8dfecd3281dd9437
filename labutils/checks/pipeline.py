"""Self-check of notebook 02's exercise: the ``tf.data`` chain the Lab 4 network trains on.

The dataset is judged by the batches it yields, not by how it is written: batches
of the requested size; raw pixels 0-255 in (32, 32, 3) images (the network scales
them itself); labels 0/1 that belong to their images (looked up in the records);
shuffled, not in file order; and endless, since Keras asks for ``steps_per_epoch``
batches every epoch.
"""
from __future__ import annotations

import numpy as np
import tensorflow as tf

from labutils import config, tfrecords, training
from labutils.checks import SelfCheckError, passed


def check_training_dataset(ds: tf.data.Dataset, split: str = "train", batch_size: int = 32,
                           records_dir=config.RECORDS_DIR) -> str:
    """Compare the batches of ``ds`` with what the records of ``split`` hold (see the module docstring)."""
    task = "training_dataset"
    if not isinstance(ds, tf.data.Dataset):
        raise SelfCheckError(f"{task} returned a {type(ds).__name__}, not a tf.data.Dataset.")
    reference = tfrecords.read_split(split, records_dir)
    label_of = {image.tobytes(): int(label) for image, label in zip(reference.images, reference.labels)}
    steps = training.steps(len(reference.labels), batch_size)
    batches = iter(ds)
    first_images = None
    for b in range(steps + 2):  # one epoch and a bit: Keras needs the next epoch's batches too
        try:
            element = next(batches)
        except StopIteration:
            raise SelfCheckError(f"the dataset ended after {b} batches, but an epoch is {steps} batches and "
                                 f"training runs several: .repeat() it.") from None
        if not isinstance(element, (tuple, list)) or len(element) != 2:
            raise SelfCheckError(f"batch {b} is a {type(element).__name__} of {len(element) if hasattr(element, '__len__') else 1} "
                                 f"parts: yield (images, labels) pairs, as Keras' fit expects.")
        images, labels = (np.asarray(t) for t in element)
        if images.shape[1:] != config.IMAGE_SHAPE or images.ndim != 4:
            raise SelfCheckError(f"batch {b}: images of shape {images.shape}, expected (batch, 32, 32, 3): parse "
                                 f"after batching, and reshape the decoded bytes to (-1, 32, 32, 3).")
        if b < steps - 1 and len(images) != batch_size:
            raise SelfCheckError(f"batch {b} holds {len(images)} images, expected {batch_size}: batch with the "
                                 f"batch size asked for (shuffle and repeat before batching).")
        if labels.shape != (len(images),):
            raise SelfCheckError(f"batch {b}: labels of shape {labels.shape}, expected ({len(images)},).")
        if images.max(initial=0) <= 1.0:
            raise SelfCheckError(f"batch {b}: images are {images.dtype} in [0, 1]: feed raw pixels 0-255 (the "
                                 f"network's first layer scales them; scaling here would scale twice).")
        if images.min(initial=0) < 0 or images.max(initial=0) > 255:
            raise SelfCheckError(f"batch {b}: pixel values from {images.min()} to {images.max()}, expected 0-255.")
        raw = images.astype(np.uint8)
        for i, (image, label) in enumerate(zip(raw, labels)):
            truth = label_of.get(image.tobytes())
            if truth is None:
                raise SelfCheckError(f"batch {b}, element {i}: this image is not one of the {split} records "
                                     f"(pixels changed? decode with tf.uint8 and do not transform them).")
            if int(label) != truth:
                raise SelfCheckError(f"batch {b}, element {i}: label {label}, but that image's record says "
                                     f"{truth} (1 = cat): keep each image with its own label.")
        if b == 0:
            first_images = raw
    unshuffled = next(iter(tfrecords.records(split, records_dir).batch(batch_size).map(tfrecords.parse_batch)))[0]
    if np.array_equal(first_images, unshuffled.numpy()):
        raise SelfCheckError("the first batch is the shards' first records in file order: shuffle the examples "
                             "(.shuffle(buffer, seed=seed)) so that each batch mixes the data.")
    return passed(task, f"{steps + 2} batches of {batch_size} raw images (0-255) with their own labels, shuffled, "
                        f"and still going after one epoch ({steps} batches)")
