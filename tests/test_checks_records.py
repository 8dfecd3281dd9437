"""Notebook 01's self-checks accept every correct solution and reject wrong ones with a message that says
what differs (issue 14): correct variants written differently pass, plausible mistakes fail."""
from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

from labutils.checks import SelfCheckError, records as check


def int64(value) -> tf.train.Feature:
    return tf.train.Feature(int64_list=tf.train.Int64List(value=[int(value)]))


def raw(image: np.ndarray) -> tf.train.Feature:
    return tf.train.Feature(bytes_list=tf.train.BytesList(value=[image.tobytes()]))


def example(feature: dict) -> tf.train.Example:
    return tf.train.Example(features=tf.train.Features(feature=feature))


# ---- make_example: right, written differently -----------------------------------------------------------

def reordered(image, label, class_id, index):  # another insertion order (protobuf may still sort the map)
    return example({"index": int64(index), "class_id": int64(class_id), "label": int64(label), "image": raw(image)})


def entries_reversed(image, label, class_id, index):  # the same map, its entries on the wire in reverse order
    features = {"image": raw(image), "label": int64(label), "class_id": int64(class_id), "index": int64(index)}
    entries = b"".join(tf.train.Features(feature={name: feature}).SerializeToString()
                       for name, feature in reversed(sorted(features.items())))
    return b"\x0a" + _varint(len(entries)) + entries  # Example field 1 (features), length-delimited


def _varint(n: int) -> bytes:
    out = b""
    while n >= 0x80:
        out, n = out + bytes([n & 0x7F | 0x80]), n >> 7
    return out + bytes([n])


def built_step_by_step(image, label, class_id, index):  # fills the proto field by field, returns bytes
    ex = tf.train.Example()
    ex.features.feature["image"].bytes_list.value.append(np.ascontiguousarray(image, np.uint8).tobytes())
    for name, value in (("label", label), ("class_id", class_id), ("index", index)):
        ex.features.feature[name].int64_list.value.append(int(value))
    return ex.SerializeToString()


# ---- make_example: wrong -----------------------------------------------------------------------------------

def swapped(image, label, class_id, index):
    return example({"image": raw(image), "label": int64(class_id), "class_id": int64(label), "index": int64(index)})


def scaled(image, label, class_id, index):
    return example({"image": raw((image / 255.0).astype(np.float32)), "label": int64(label),
                    "class_id": int64(class_id), "index": int64(index)})


def unscaled_float(image, label, class_id, index):
    return example({"image": raw(image.astype(np.float32)), "label": int64(label), "class_id": int64(class_id),
                    "index": int64(index)})


def channels_first(image, label, class_id, index):
    return example({"image": raw(np.ascontiguousarray(image.transpose(2, 0, 1))), "label": int64(label),
                    "class_id": int64(class_id), "index": int64(index)})


def no_index(image, label, class_id, index):
    return example({"image": raw(image), "label": int64(label), "class_id": int64(class_id)})


def label_as_float(image, label, class_id, index):
    return example({"image": raw(image), "label": tf.train.Feature(float_list=tf.train.FloatList(value=[label])),
                    "class_id": int64(class_id), "index": int64(index)})


@pytest.mark.parametrize("make_example", [reordered, built_step_by_step, entries_reversed])
def test_correct_examples_pass(make_example, smoke_splits):
    assert "16 examples" in check.check_make_example(make_example, smoke_splits["train"])


def test_reordered_features_serialize_differently_but_pass(smoke_splits):
    from labutils import tfrecords

    s = smoke_splits["train"]
    args = (s.images[0], s.labels[0], s.class_ids[0], s.indices[0])
    # Protobuf fixes no order for a map's entries on the wire: in one run (TF_ENABLE_ONEDNN_OPTS=0)
    # `reordered` serialized to labutils' very bytes. This variant's bytes differ by construction.
    assert entries_reversed(*args) != tfrecords.serialize(*args)  # the bytes differ...
    assert tf.train.Example.FromString(entries_reversed(*args)) == tf.train.Example.FromString(tfrecords.serialize(*args))
    check.check_make_example(entries_reversed, s)  # ...and the check still passes: it compares meaning


@pytest.mark.parametrize("make_example, message", [
    (swapped, "did you swap label and class_id"),
    (scaled, "12,288 bytes, expected 3,072 = 32 x 32 x 3 uint8 values (float32 pixels scaled to [0, 1]"),
    (unscaled_float, "12,288 bytes, expected 3,072 = 32 x 32 x 3 uint8 values (4 bytes per value"),
    (channels_first, "the bytes decode to other pixels (stored channels first, transposed to (3, 32, 32))"),
    (no_index, "missing ['index']"),
    (label_as_float, "feature 'label' of image 0 (index 0): stored as float, expected int64"),
])
def test_wrong_examples_fail_saying_what_differs(make_example, message, smoke_splits):
    with pytest.raises(SelfCheckError, match=message.replace("(", r"\(").replace(")", r"\)").replace("[", r"\[")
                       .replace("]", r"\]")):
        check.check_make_example(make_example, smoke_splits["train"])


# ---- parse_batch -------------------------------------------------------------------------------------------

DESCRIPTION = {"image": tf.io.FixedLenFeature([], tf.string), "label": tf.io.FixedLenFeature([], tf.int64),
               "class_id": tf.io.FixedLenFeature([], tf.int64), "index": tf.io.FixedLenFeature([], tf.int64)}


def parse_whole_batch(serialized):
    f = tf.io.parse_example(serialized, DESCRIPTION)
    return tf.reshape(tf.io.decode_raw(f["image"], tf.uint8), (-1, 32, 32, 3)), f["label"]


def parse_one_record(serialized):  # parse_single_example, mapped per record by the check
    f = tf.io.parse_single_example(serialized, {"image": DESCRIPTION["image"], "label": DESCRIPTION["label"]})
    return {"image": tf.reshape(tf.io.decode_raw(f["image"], tf.uint8), (32, 32, 3)), "label": f["label"]}


def parse_channels_first(serialized):
    f = tf.io.parse_example(serialized, DESCRIPTION)
    images = tf.reshape(tf.io.decode_raw(f["image"], tf.uint8), (-1, 3, 32, 32))
    return tf.transpose(images, (0, 2, 3, 1)), f["label"]


def parse_class_as_label(serialized):
    f = tf.io.parse_example(serialized, DESCRIPTION)
    return tf.reshape(tf.io.decode_raw(f["image"], tf.uint8), (-1, 32, 32, 3)), f["class_id"]


def parse_and_scale(serialized):
    images, labels = parse_whole_batch(serialized)
    return tf.cast(images, tf.float32) / 255.0, labels


def parse_float_labels(serialized):  # labels cast for the loss: still one 0/1 label per image
    images, labels = parse_whole_batch(serialized)
    return images, tf.cast(labels, tf.float32)


def parse_column_labels(serialized):  # labels (B, 1), not the (B,) the docstring promises
    images, labels = parse_whole_batch(serialized)
    return images, tf.reshape(labels, (-1, 1))


def parse_halved_labels(serialized):  # not the stored labels: 0.5 for a cat
    images, labels = parse_whole_batch(serialized)
    return images, tf.cast(labels, tf.float32) / 2


@pytest.mark.parametrize("parse", [parse_whole_batch, parse_one_record, parse_float_labels])
def test_correct_parsers_pass(parse, smoke_records):
    assert "the same images" in check.check_parse_batch(parse, records_dir=smoke_records)


@pytest.mark.parametrize("parse, message", [
    (parse_channels_first, r"batch element 0: pixels differ \(read as channels first, \(3, 32, 32\), then transposed\)"),
    (parse_class_as_label, "return the 'label' feature"),
    (parse_and_scale, "images are float32, expected uint8"),
    (parse_column_labels, r"labels have shape \(\d+, 1\), expected \(\d+,\): one label per image"),
    (parse_halved_labels, r"element \d+: yours 0\.5, expected 1"),
])
def test_wrong_parsers_fail_saying_what_differs(parse, message, smoke_records):
    with pytest.raises(SelfCheckError, match=message):
        check.check_parse_batch(parse, records_dir=smoke_records)
