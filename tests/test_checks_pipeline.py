"""Notebook 02's self-check judges the training dataset by its batches: correct chains written
differently pass, plausible mistakes fail with a message naming the difference (issue 14)."""
from __future__ import annotations

import pytest
import tensorflow as tf

from labutils import config, tfrecords
from labutils.checks import SelfCheckError, pipeline as check

AUTOTUNE = tf.data.AUTOTUNE
DESCRIPTION = {"image": tf.io.FixedLenFeature([], tf.string), "label": tf.io.FixedLenFeature([], tf.int64)}


def files(records_dir):
    return [str(f) for f in tfrecords.shard_files("train", records_dir)]


def lab_chain(records_dir, batch_size):  # the notebook's solution
    names = files(records_dir)
    ds = tf.data.Dataset.from_tensor_slices(names).shuffle(len(names), seed=config.SEED)
    ds = ds.interleave(tf.data.TFRecordDataset, cycle_length=len(names), num_parallel_calls=AUTOTUNE,
                       deterministic=True)
    ds = ds.shuffle(10_000, seed=config.SEED).repeat()
    return ds.batch(batch_size).map(tfrecords.parse_batch, num_parallel_calls=AUTOTUNE).prefetch(AUTOTUNE)


def per_record_chain(records_dir, batch_size):  # parse each record, float pixels 0-255, repeat before shuffle
    def parse(record):
        f = tf.io.parse_single_example(record, DESCRIPTION)
        image = tf.cast(tf.reshape(tf.io.decode_raw(f["image"], tf.uint8), (32, 32, 3)), tf.float32)
        return image, tf.cast(f["label"], tf.float32)

    ds = tf.data.TFRecordDataset(files(records_dir)).map(parse).repeat().shuffle(2_000, seed=1)
    return ds.batch(batch_size)


def small_buffer_chain(records_dir, batch_size):  # interleaved shards, a buffer of 1,000 (not the whole split)
    names = files(records_dir)
    ds = tf.data.Dataset.from_tensor_slices(names).shuffle(len(names), seed=7)
    ds = ds.interleave(tf.data.TFRecordDataset, cycle_length=4, block_length=4)
    return ds.repeat().shuffle(1_000, seed=7).batch(batch_size).map(tfrecords.parse_batch)


def scaled_chain(records_dir, batch_size):
    return lab_chain(records_dir, batch_size).map(lambda x, y: (tf.cast(x, tf.float32) / 255.0, y))


def not_repeated(records_dir, batch_size):
    ds = tf.data.TFRecordDataset(files(records_dir)).shuffle(10_000, seed=config.SEED)
    return ds.batch(batch_size).map(tfrecords.parse_batch)


def not_shuffled(records_dir, batch_size):
    return tfrecords.records("train", records_dir).repeat().batch(batch_size).map(tfrecords.parse_batch)


def shard_list_shuffled_only(records_dir, batch_size):  # the file list shuffled, the examples not
    names = files(records_dir)
    ds = tf.data.Dataset.from_tensor_slices(names).shuffle(len(names), seed=config.SEED)
    ds = ds.interleave(tf.data.TFRecordDataset, cycle_length=len(names)).repeat()
    return ds.batch(batch_size).map(tfrecords.parse_batch)


def batches_shuffled(records_dir, batch_size):  # .shuffle after .batch: whole batches change places
    names = files(records_dir)
    ds = tf.data.Dataset.from_tensor_slices(names).shuffle(len(names), seed=config.SEED)
    ds = ds.interleave(tf.data.TFRecordDataset, cycle_length=len(names))
    return ds.batch(batch_size, drop_remainder=True).shuffle(100, seed=config.SEED).repeat().map(tfrecords.parse_batch)


def tiny_buffer_one_shard_at_a_time(records_dir, batch_size):  # cycle_length=1: shards in turn, buffer of 16
    names = files(records_dir)
    ds = tf.data.Dataset.from_tensor_slices(names).shuffle(len(names), seed=config.SEED)
    ds = ds.interleave(tf.data.TFRecordDataset, cycle_length=1).shuffle(16, seed=config.SEED).repeat()
    return ds.batch(batch_size).map(tfrecords.parse_batch)


def labels_shuffled_apart(records_dir, batch_size):  # images and labels shuffled separately
    ds = lab_chain(records_dir, batch_size)
    return ds.map(lambda x, y: (x, tf.random.shuffle(y, seed=3)))


@pytest.mark.parametrize("chain", [lab_chain, per_record_chain, small_buffer_chain])
def test_correct_chains_pass(chain, smoke_records):
    assert "shuffled" in check.check_training_dataset(chain(smoke_records, 32), batch_size=32, records_dir=smoke_records)


@pytest.mark.parametrize("chain, message", [
    (scaled_chain, "in \\[0, 1\\]: feed raw pixels 0-255"),
    (not_repeated, "the dataset ended after 29 batches, but an epoch is 29 batches"),
    (not_shuffled, "first records in file order: shuffle"),
    (labels_shuffled_apart, "but that image's record says"),
    (shard_list_shuffled_only, "the examples are not shuffled: 100% of consecutive images in a batch are neighbours "
                               "in the shards .* each batch goes on where the last one stopped"),
    (batches_shuffled, "whole batches are shuffled, not examples: 100% of consecutive images"),
    (tiny_buffer_one_shard_at_a_time, r"the shuffle buffer is too small: each batch is drawn from only ~\d+ "
                                      r"neighbouring records of the shards \(must be at least 96"),
])
def test_wrong_chains_fail_saying_what_differs(chain, message, smoke_records):
    with pytest.raises(SelfCheckError, match=message):
        check.check_training_dataset(chain(smoke_records, 32), batch_size=32, records_dir=smoke_records)
