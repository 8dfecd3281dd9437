"""Input pipeline throughput: in-RAM arrays vs the lab's TFRecord pipeline vs a naive TFRecord reader.

Run: ``python benchmarks/pipeline.py [--source PATH] [--batches N]``. Writes the
shards of ``--source`` (default ``$LAB5_CIFAR10``, e.g. the shared subset) into a
temporary folder, then times each pipeline over the same number of training
batches (shuffled, repeated, scaled to [0, 1]) and prints images/s and ratios.
Then the images/s of training the Lab 4 CNN from each of the two real pipelines (raw
uint8 pixels; the network scales them itself): both fits warmed up first, then measured
in alternation over ``--rounds`` rounds. On the 2-core CI machine the very same fit runs,
for several epochs at a time, in a slower mode (about two thirds of its speed) whichever
pipeline feeds it: measured one after the other, that mode, not the pipeline, sets the ratio.
The headline ratio compares the best round of each (``timeit``'s rule), the medians follow.
"""
from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import tensorflow as tf

from labutils import cifar10, config, models, training, tfrecords


def in_ram(split: cifar10.Split, batch: int, prescaled: bool) -> tf.data.Dataset:
    """Arrays in RAM: float32 scaled in NumPy first (the Lab 4 way) or uint8 scaled per batch."""
    images = split.images.astype("float32") / 255.0 if prescaled else split.images
    ds = tf.data.Dataset.from_tensor_slices((images, split.labels.astype("float32")))
    ds = ds.shuffle(10_000, seed=config.SEED).repeat().batch(batch)
    if not prescaled:
        ds = ds.map(lambda x, y: (tf.cast(x, tf.float32) / 255.0, y), num_parallel_calls=tf.data.AUTOTUNE)
    return ds.prefetch(tf.data.AUTOTUNE)


def naive(records: Path, batch: int) -> tf.data.Dataset:
    """One file after another, one ``parse_single_example`` per record, nothing in parallel."""
    def parse(record):
        f = tf.io.parse_single_example(record, tfrecords.FEATURES)
        image = tf.reshape(tf.io.decode_raw(f["image"], tf.uint8), config.IMAGE_SHAPE)
        return tf.cast(image, tf.float32) / 255.0, tf.cast(f["label"], tf.float32)

    files = [str(p) for p in tfrecords.shard_files("train", records)]
    return tf.data.TFRecordDataset(files).shuffle(10_000, seed=config.SEED).repeat().map(parse).batch(batch)


def images_per_second(ds: tf.data.Dataset, batches: int, batch: int, repeats: int = 3) -> float:
    runs = []
    for _ in range(repeats):
        iterator = iter(ds)
        for _ in range(10):  # warm up: fill shuffle buffers and prefetch
            next(iterator)
        start = time.perf_counter()
        for _ in range(batches):
            next(iterator)
        runs.append(batches * batch / (time.perf_counter() - start))
    return statistics.median(runs)


def training_rates(datasets: dict[str, tf.data.Dataset], examples: int, batch: int,
                   rounds: int) -> dict[str, list[float]]:
    """Images/s of one ``fit`` epoch of the Lab 4 CNN from each dataset, alternating, ``rounds`` times,
    after a warm-up epoch of each (one model per dataset, same seed)."""
    import keras

    steps = training.steps(examples, batch)
    fitted = {}
    for name, ds in datasets.items():
        keras.utils.set_random_seed(config.SEED)
        fitted[name] = training.compile_binary(models.lab4_cnn(), config.LEARNING_RATES["lab4"])
        fitted[name].fit(ds, steps_per_epoch=steps, epochs=1, verbose=0)
    rates = {name: [] for name in datasets}
    for _ in range(rounds):
        for name, ds in datasets.items():
            start = time.perf_counter()
            fitted[name].fit(ds, steps_per_epoch=steps, epochs=1, verbose=0)
            rates[name].append(steps * batch / (time.perf_counter() - start))
    return rates


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", default=None, help="CIFAR-10 source (default: $LAB5_CIFAR10 or Keras' cache)")
    parser.add_argument("--batches", type=int, default=300)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=5, help="alternating training epochs per pipeline")
    args = parser.parse_args()

    splits = cifar10.prepare_splits(cifar10.load(args.source), config.profile("full"))
    train, b, n = splits["train"], args.batch_size, args.batches
    with tempfile.TemporaryDirectory() as tmp:
        records = Path(tmp)
        tfrecords.write_splits(splits, records, progress=False)
        rates = {
            "in-RAM float32 (Lab 4 way)": images_per_second(in_ram(train, b, prescaled=True), n, b),
            "in-RAM uint8, scaled per batch": images_per_second(in_ram(train, b, prescaled=False), n, b),
            "TFRecord (labutils.tfrecords)": images_per_second(
                tfrecords.dataset("train", b, training=True, records_dir=records), n, b),
            "naive parse_single_example": images_per_second(naive(records, b), n, b),
        }
        raw_ram = tf.data.Dataset.from_tensor_slices((train.images, train.labels.astype("float32")))
        raw_ram = raw_ram.shuffle(10_000, seed=config.SEED).repeat().batch(b).prefetch(tf.data.AUTOTUNE)
        raw_tfr = tfrecords.dataset("train", b, training=True, preprocess=None, records_dir=records)
        fits = training_rates({"RAM": raw_ram, "TFRecord": raw_tfr}, len(train.labels), b, args.rounds)

    print(f"Input pipelines alone: {len(train.labels):,} training images, batch {b}, {n} batches, median of 3 runs")
    for name, rate in rates.items():
        print(f"  {name:32s} {rate:12,.0f} images/s")
    tfr = rates["TFRecord (labutils.tfrecords)"]
    for name in ("in-RAM float32 (Lab 4 way)", "in-RAM uint8, scaled per batch", "naive parse_single_example"):
        print(f"  TFRecord / {name:32s} {tfr / rates[name]:5.2f}x")
    print(f"Training the Lab 4 CNN from each (one epoch each in turn, {args.rounds} rounds after a warm-up epoch):")
    for name, rates in fits.items():
        print(f"  from {name:9s} median {statistics.median(rates):6,.0f} images/s   rounds: "
              + " ".join(f"{r:,.0f}" for r in rates))
    per_round = [t / r for r, t in zip(fits["RAM"], fits["TFRecord"])]
    # Best of the rounds is the headline (timeit's rule: slower rounds are the machine's doing, not the code's;
    # here both fits fall, now and then, into the same slower mode, whichever pipeline feeds them).
    print(f"  TFRecord / in-RAM: best of rounds {max(fits['TFRecord']) / max(fits['RAM']):.2f}x, medians "
          f"{statistics.median(fits['TFRecord']) / statistics.median(fits['RAM']):.2f}x "
          f"(per round: {' '.join(f'{x:.2f}' for x in per_round)})")


if __name__ == "__main__":
    main()
