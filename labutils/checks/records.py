"""Self-checks of notebook 01's exercises: one image as a ``tf.train.Example``, and parsing a batch back.

Records are compared by what they hold, never by their bytes: two Examples with the
same features serialize differently when the features are added in another order
(protobuf keeps the map's insertion order), and both are right.
"""
from __future__ import annotations

from typing import Callable

import numpy as np
import tensorflow as tf

from labutils import config, tfrecords
from labutils.checks import SelfCheckError, largest_difference, passed
from labutils.cifar10 import Split

KINDS = {"bytes_list": "bytes", "int64_list": "int64", "float_list": "float"}
SAMPLE = 16  # images compared


def _features(serialized: bytes) -> dict[str, tuple[str, list]]:
    """feature name -> (kind, values) of one serialized Example."""
    example = tf.train.Example.FromString(serialized)
    found = {}
    for name, feature in example.features.feature.items():
        kind = feature.WhichOneof("kind")
        found[name] = (KINDS.get(kind, str(kind)), list(getattr(feature, kind).value) if kind else [])
    return found


def _as_bytes(made, task: str) -> bytes:
    if isinstance(made, tf.train.Example):
        return made.SerializeToString()
    if isinstance(made, bytes):
        return made
    raise SelfCheckError(f"{task} returned a {type(made).__name__}: return the tf.train.Example "
                         f"(tf.train.Example(features=tf.train.Features(feature={{...}}))).")


def _compare_image(got: list, expected: bytes, where: str) -> None:
    if len(got) != 1 or not isinstance(got[0], bytes):
        raise SelfCheckError(f"feature 'image' of {where}: holds {len(got)} values; store the whole image as ONE "
                             f"bytes value (image.tobytes()).")
    if len(got[0]) != len(expected):
        hint = ""
        if len(got[0]) == 4 * len(expected):
            as_float = np.frombuffer(got[0], np.float32)
            hint = (" (float32 pixels scaled to [0, 1]: the lab stores the raw uint8 pixels, unscaled; the model scales "
                    "them)" if np.all(np.isfinite(as_float)) and 0 <= as_float.min() and as_float.max() <= 1 else
                    " (4 bytes per value: the image was converted to float or int32 before writing; the lab stores "
                    "the raw uint8 pixels, unscaled)")
        raise SelfCheckError(f"feature 'image' of {where}: {len(got[0]):,} bytes, expected {len(expected):,} "
                             f"= 32 x 32 x 3 uint8 values{hint}.")
    yours = np.frombuffer(got[0], np.uint8).reshape(config.IMAGE_SHAPE)
    ours = np.frombuffer(expected, np.uint8).reshape(config.IMAGE_SHAPE)
    if not np.array_equal(yours, ours):
        diff, at = largest_difference(yours, ours)
        transposed = np.array_equal(np.frombuffer(got[0], np.uint8), ours.transpose(2, 0, 1).ravel())
        raise SelfCheckError(f"feature 'image' of {where}: the bytes decode to other pixels"
                             + (" (stored channels first, transposed to (3, 32, 32))" if transposed else "")
                             + f"; largest difference {diff:g} at (row, column, channel) {at}: yours {yours[at]}, "
                             f"expected {ours[at]}. Store image.tobytes() of the uint8 (32, 32, 3) array as it is.")


def check_make_example(make_example: Callable, split: Split, count: int = SAMPLE) -> str:
    """Compare ``make_example(image, label, class_id, index)`` with :func:`labutils.tfrecords.serialize`
    on the first ``count`` images of ``split``: every feature, its kind, its values, the decoded pixels.
    """
    task = "make_example"
    count = min(count, len(split.labels))
    for i in range(count):
        args = (split.images[i], split.labels[i], split.class_ids[i], split.indices[i])
        where = f"image {i} (index {int(split.indices[i])})"
        yours = _features(_as_bytes(make_example(*args), task))
        ours = _features(tfrecords.serialize(*args))
        missing, extra = sorted(set(ours) - set(yours)), sorted(set(yours) - set(ours))
        if missing or extra:
            raise SelfCheckError(f"{where}: features {sorted(yours)}, expected {sorted(ours)}"
                                 + (f"; missing {missing}" if missing else "") + (f"; unexpected {extra}" if extra else "")
                                 + ". The record format is fixed: image, label, class_id, index.")
        for name, (kind, values) in ours.items():
            got_kind, got = yours[name]
            if got_kind != kind:
                raise SelfCheckError(f"feature {name!r} of {where}: stored as {got_kind}, expected {kind} "
                                     f"({'tf.train.BytesList' if kind == 'bytes' else 'tf.train.Int64List'}).")
            if name == "image":
                _compare_image(got, values[0], where)
            elif got != values:
                hint = ""
                if name in ("label", "class_id"):
                    other = ours["class_id" if name == "label" else "label"][1]
                    if got == other and got != values:
                        hint = " (did you swap label and class_id? label is 1 for a cat, 0 otherwise)"
                raise SelfCheckError(f"feature {name!r} of {where}: yours {got}, expected {values}{hint}.")
    return passed(task, f"{count} examples hold the same features as labutils' (kinds, values, and pixels "
                        f"decoded from the image bytes; largest pixel difference 0, must be 0)")


def _parse_output(output, task: str):
    if isinstance(output, dict):
        if "image" not in output or "label" not in output:
            raise SelfCheckError(f"{task} returned a dict with keys {sorted(output)}: return (images, labels).")
        return output["image"], output["label"]
    if isinstance(output, (tuple, list)) and len(output) >= 2:
        return output[0], output[1]
    raise SelfCheckError(f"{task} returned a {type(output).__name__}: return (images, labels).")


def check_parse_batch(parse_batch: Callable, split: str = "val", batch_size: int = SAMPLE,
                      records_dir=config.RECORDS_DIR) -> str:
    """Compare ``parse_batch(serialized)`` on a batch of real records with labutils' pipeline output.

    Accepts a function of a whole batch (``tf.io.parse_example``) or of one record
    (``tf.io.parse_single_example``, then mapped over the records and batched).
    """
    task = "parse_batch"
    raw = tfrecords.records(split, records_dir)
    ours_images, ours_labels = next(iter(tfrecords.dataset(split, batch_size, preprocess=None, records_dir=records_dir)))
    ours_images, ours_labels = ours_images.numpy(), ours_labels.numpy()
    try:
        images, labels = (np.asarray(t) for t in _parse_output(parse_batch(next(iter(raw.batch(batch_size)))), task))
        whole_batch = images.ndim == 4 and images.shape[0] == len(ours_labels)
    except (ValueError, TypeError, tf.errors.InvalidArgumentError) as err:  # written for one record at a time?
        whole_batch, first_error = False, err
    else:
        first_error = None
    if not whole_batch:
        try:
            per_record = raw.map(lambda s: tuple(_parse_output(parse_batch(s), task))).batch(batch_size)
            images, labels = (np.asarray(t) for t in next(iter(per_record)))
        except (ValueError, TypeError, tf.errors.InvalidArgumentError) as err:
            if first_error is None:
                raise SelfCheckError(f"{task} gave images of shape {images.shape} for a batch of "
                                     f"{len(ours_labels)} records, expected {ours_images.shape}.") from err
            raise SelfCheckError(f"{task} failed on a batch of {len(ours_labels)} serialized records: "
                                 f"{type(first_error).__name__}: {str(first_error).splitlines()[0]}") from first_error
    if images.shape != ours_images.shape:
        hint = (" (the bytes are stored height, width, channel: reshape to (-1, 32, 32, 3))"
                if sorted(images.shape[1:]) == sorted(ours_images.shape[1:]) else "")
        raise SelfCheckError(f"images have shape {images.shape}, expected {ours_images.shape}{hint}.")
    if images.dtype != np.uint8:
        raise SelfCheckError(f"images are {images.dtype}, expected uint8: decode the bytes with "
                             f"tf.io.decode_raw(..., tf.uint8) and do not scale here (the pipeline or model does).")
    for i in range(len(ours_labels)):
        if not np.array_equal(images[i], ours_images[i]):
            diff, at = largest_difference(images[i], ours_images[i])
            # The mistake of reading the bytes as channels first, (3, 32, 32), then transposing to channels last.
            channels_first = np.array_equal(images[i], ours_images[i].reshape(3, 32, 32).transpose(1, 2, 0))
            raise SelfCheckError(f"batch element {i}: pixels differ"
                                 + (" (read as channels first, (3, 32, 32), then transposed)" if channels_first else "")
                                 + f"; largest difference {diff:g} at (row, column, "
                                 f"channel) {at}: yours {images[i][at]}, expected {ours_images[i][at]} (the bytes are "
                                 f"height, width, channel: a plain reshape to (-1, 32, 32, 3), no transpose).")
    if labels.shape != ours_labels.shape:
        hint = " (reshape or index it to one label per image)" if labels.size == ours_labels.size else ""
        raise SelfCheckError(f"labels have shape {labels.shape}, expected {ours_labels.shape}: one label per "
                             f"image, as the 'label' feature is parsed (FixedLenFeature([], tf.int64)){hint}.")
    if not np.issubdtype(labels.dtype, np.number) or not np.array_equal(labels, ours_labels):
        wrong = np.flatnonzero(labels != ours_labels)[:5] if np.issubdtype(labels.dtype, np.number) else []
        pairs = ", ".join(f"element {i}: yours {labels[i]:g}, expected {ours_labels[i]:g}" for i in wrong)
        raise SelfCheckError(f"labels {labels[:8].tolist()}... expected {ours_labels[:8].astype(int).tolist()}..."
                             + (f" ({pairs}: return the 'label' feature as stored, 1 = cat)" if pairs else "") + ".")
    return passed(task, f"a batch of {len(ours_labels)} records parses to the same images (uint8, {images.shape[1:]}, "
                        f"largest pixel difference 0, must be 0) and labels as labutils' pipeline")
