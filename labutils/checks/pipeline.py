"""Self-check of notebook 02's exercise: the ``tf.data`` chain the Lab 4 network trains on.

The dataset is judged by the batches it yields, not by how it is written: batches
of the requested size; raw pixels 0-255 in (32, 32, 3) images (the network scales
them itself); labels 0/1 that belong to their images (looked up in the records);
endless, since Keras asks for ``steps_per_epoch`` batches every epoch; and shuffled
example by example. Shuffling is judged over the whole first epoch from where each
image sits in the shards (shard, position), against the same statistics of an
example-level shuffle of the whole split:

* *neighbours*: the share of consecutive images in a batch that are neighbours in
  the shards (next record of the same shard, or the same position of another shard,
  as an interleave reads them). Shuffling only the shard list, or whole batches
  after ``.batch()``, keeps nearly all of them; a shuffle of the examples, almost none.
* *window*: how many neighbouring records a batch is drawn from (per shard, the
  span of the positions it holds, summed over shards). A buffer of a few examples,
  or shards read one at a time into a small buffer, draws each batch from a window
  barely wider than the batch.
"""
from __future__ import annotations

import numpy as np
import tensorflow as tf

from labutils import config, tfrecords, training
from labutils.checks import SelfCheckError, passed

NEIGHBOURS_MAX = 0.5  # share of neighbour pairs; an example-level shuffle gives ~3 / (records per shard)
WINDOW_BATCHES = 3  # a batch must be drawn from a window at least this many batch sizes wide


def _origins(split: str, records_dir) -> dict[bytes, tuple[int, int, int]]:
    """image bytes -> (label, shard, position in the shard) for every record of ``split``, shards in file order."""
    reference = tfrecords.read_split(split, records_dir)
    counts = [s["examples"] for s in tfrecords.read_manifest(records_dir)["splits"][split]["shards"]]
    shard = np.repeat(np.arange(len(counts)), counts)
    position = np.concatenate([np.arange(n) for n in counts])
    return {image.tobytes(): (int(label), int(s), int(p))
            for image, label, s, p in zip(reference.images, reference.labels, shard, position)}


def _check_batch(b: int, element, batch_size: int, full: bool, origin_of: dict, split: str) -> np.ndarray:
    """Raise if batch ``b`` is malformed; else its images' (shard, position) rows, int ``(B, 2)``."""
    if not isinstance(element, (tuple, list)) or len(element) != 2:
        raise SelfCheckError(f"batch {b} is a {type(element).__name__} of {len(element) if hasattr(element, '__len__') else 1} "
                             f"parts: yield (images, labels) pairs, as Keras' fit expects.")
    images, labels = (np.asarray(t) for t in element)
    if images.shape[1:] != config.IMAGE_SHAPE or images.ndim != 4:
        raise SelfCheckError(f"batch {b}: images of shape {images.shape}, expected (batch, 32, 32, 3): parse "
                             f"after batching, and reshape the decoded bytes to (-1, 32, 32, 3).")
    if full and len(images) != batch_size:
        raise SelfCheckError(f"batch {b} holds {len(images)} images, expected {batch_size}: batch with the "
                             f"batch size asked for (shuffle and repeat before batching).")
    if labels.shape != (len(images),):
        raise SelfCheckError(f"batch {b}: labels of shape {labels.shape}, expected ({len(images)},).")
    if images.max(initial=0) <= 1.0:
        raise SelfCheckError(f"batch {b}: images are {images.dtype} in [0, 1]: feed raw pixels 0-255 (the "
                             f"network's first layer scales them; scaling here would scale twice).")
    if images.min(initial=0) < 0 or images.max(initial=0) > 255:
        raise SelfCheckError(f"batch {b}: pixel values from {images.min()} to {images.max()}, expected 0-255.")
    rows = []
    for i, (image, label) in enumerate(zip(images.astype(np.uint8), labels)):
        origin = origin_of.get(image.tobytes())
        if origin is None:
            raise SelfCheckError(f"batch {b}, element {i}: this image is not one of the {split} records "
                                 f"(pixels changed? decode with tf.uint8 and do not transform them).")
        if int(label) != origin[0]:
            raise SelfCheckError(f"batch {b}, element {i}: label {label}, but that image's record says "
                                 f"{origin[0]} (1 = cat): keep each image with its own label.")
        rows.append(origin[1:])
    return np.array(rows, dtype=np.int64).reshape(-1, 2)


def _neighbours(first: np.ndarray, second: np.ndarray) -> np.ndarray:
    """bool per pair of (shard, position) rows: neighbours in the shards (same shard, next record; or
    another shard at the same or the next position, as an interleave reads them)."""
    same, step = first[:, 0] == second[:, 0], second[:, 1] - first[:, 1]
    return np.where(same, step == 1, np.abs(step) <= 1)


def _statistics(batches: list[np.ndarray]) -> tuple[float, float, float]:
    """Share of neighbour pairs inside batches and between one batch's last image and the next one's
    first; mean window (positions spanned per shard, summed over shards) of a batch."""
    inside = np.concatenate([_neighbours(o[:-1], o[1:]) for o in batches])
    across = np.array([_neighbours(a[-1:], b[:1])[0] for a, b in zip(batches[:-1], batches[1:])])
    windows = [sum(np.ptp(o[o[:, 0] == s, 1]) + 1 for s in np.unique(o[:, 0])) for o in batches]
    return float(inside.mean()), float(across.mean()) if across.size else 0.0, float(np.mean(windows))


def _shuffled_statistics(origin_of: dict, steps: int, batch_size: int) -> tuple[float, float, float]:
    """:func:`_statistics` of an example-level shuffle of the whole split, cut into the same batches."""
    rows = np.array([origin[1:] for origin in origin_of.values()], dtype=np.int64)
    order = np.random.default_rng(config.SEED).permutation(len(rows))
    return _statistics([rows[order[i:i + batch_size]] for i in range(0, steps * batch_size, batch_size)
                        if len(order[i:i + batch_size]) > 1])


def _require_shuffled(batches: list[np.ndarray], origin_of: dict, batch_size: int) -> str:
    """Raise naming how the batches fall short of an example-level shuffle; else the statistics, as text."""
    inside, across, window = _statistics(batches)
    ref_inside, _, ref_window = _shuffled_statistics(origin_of, len(batches), batch_size)
    k, shards = np.arange(len(batches[0])), 1 + max(origin[1] for origin in origin_of.values())
    if any(np.array_equal(batches[0], np.stack(order, 1)) for order in ((k % shards, k // shards), (0 * k, k))):
        # the shards interleaved as tfrecords.records reads them, or read one after the other
        raise SelfCheckError("the first batch is the shards' first records in file order: shuffle the examples "
                             "(.shuffle(buffer, seed=seed)) so that each batch mixes the data.")
    measured = (f"{inside:.0%} of consecutive images in a batch are neighbours in the shards (must stay under "
                f"{NEIGHBOURS_MAX:.0%}; an example-level shuffle of the split gives {ref_inside:.0%})")
    if inside > NEIGHBOURS_MAX:
        if across > NEIGHBOURS_MAX:
            raise SelfCheckError(f"the examples are not shuffled: {measured}, and each batch goes on where the last "
                                 f"one stopped. Shuffling the shard list only changes which shard comes first: "
                                 f"shuffle the examples too (.shuffle(buffer, seed=seed) after the interleave).")
        raise SelfCheckError(f"whole batches are shuffled, not examples: {measured}, though the batches come in "
                             f"another order. .shuffle() after .batch() shuffles batches: shuffle before batching.")
    need = WINDOW_BATCHES * batch_size
    if window < need:
        raise SelfCheckError(f"the shuffle buffer is too small: each batch is drawn from only ~{window:.0f} neighbouring "
                             f"records of the shards (must be at least {need} = {WINDOW_BATCHES} x batch size; an "
                             f"example-level shuffle of the split gives ~{ref_window:.0f}). Use a buffer of thousands "
                             f"of examples (e.g. 10_000), after interleaving all the shards (cycle_length=len(files)).")
    return f"{measured}; each batch drawn from ~{window:.0f} records (at least {need}; a shuffle gives ~{ref_window:.0f})"


def check_training_dataset(ds: tf.data.Dataset, split: str = "train", batch_size: int = 32,
                           records_dir=config.RECORDS_DIR) -> str:
    """Compare the batches of ``ds`` with what the records of ``split`` hold (see the module docstring)."""
    task = "training_dataset"
    if not isinstance(ds, tf.data.Dataset):
        raise SelfCheckError(f"{task} returned a {type(ds).__name__}, not a tf.data.Dataset.")
    origin_of = _origins(split, records_dir)
    steps = training.steps(tfrecords.num_examples(split, records_dir), batch_size)
    batches, origins = iter(ds), []
    for b in range(steps + 2):  # one epoch and a bit: Keras needs the next epoch's batches too
        try:
            element = next(batches)
        except StopIteration:
            raise SelfCheckError(f"the dataset ended after {b} batches, but an epoch is {steps} batches and "
                                 f"training runs several: .repeat() it.") from None
        origins.append(_check_batch(b, element, batch_size, b < steps - 1, origin_of, split))
    shuffled = _require_shuffled(origins[:steps], origin_of, batch_size)
    return passed(task, f"{steps + 2} batches of {batch_size} raw images (0-255) with their own labels, "
                        f"still going after one epoch ({steps} batches); shuffled: {shuffled}")
