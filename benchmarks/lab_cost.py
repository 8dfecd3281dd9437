"""What the whole lab costs on this machine, per profile: measured per image, projected to full CIFAR-10.

Run: ``python benchmarks/lab_cost.py [--source PATH]`` (default ``$LAB5_CIFAR10``, e.g. the
shared subset). Measures, on the subset, the seconds per image of each phase with each
profile's own model and input size: writing the records; a Lab 4 training epoch from RAM
and from the TFRecords, and scoring; bottleneck extraction, a head epoch on cached
vectors and a fine-tuning epoch of the transfer model; Grad-CAM per photo of ``img_in/``.
Weights do not change the cost, so the backbones run with random weights where ImageNet
weights are not cached. Then it projects each notebook's minutes at the sizes each
profile uses of the full CIFAR-10 (50,000 training and 10,000 test images), every epoch
run (early stopping can only make it shorter), and ends with one line::

    projected total minutes: full=F laptop=L smoke=S

A benchmark, not a test: it prints, it asserts nothing about time.
"""
from __future__ import annotations

import argparse
import math
import os
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402

from labutils import (backbones, bottleneck, cam, cifar10, config, images, models, surgery,  # noqa: E402
                      tfrecords, training)

FULL_TRAIN, FULL_TEST = 50_000, 10_000  # the official CIFAR-10 sets
SAMPLE = 512  # images per measurement (after a warm-up)


def seconds(fn, repeats: int = 2) -> float:
    """Median wall-clock seconds of ``fn()`` after one warm-up call."""
    fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return float(np.median(times))


def sizes(profile: config.Profile) -> dict[str, int]:
    """Images per split for ``profile`` on the full CIFAR-10."""
    train_total = min(profile.train_images or FULL_TRAIN, FULL_TRAIN)
    val = round(train_total * config.VAL_FRACTION)
    return {"train": train_total - val, "val": val, "test": min(profile.test_images or FULL_TEST, FULL_TEST)}


def lab4_costs(splits: dict, records: Path, batch: int) -> dict[str, float]:
    """Seconds per image: a training epoch from RAM, from the TFRecords, and scoring."""
    x, y = splits["train"].images[:SAMPLE], splits["train"].labels[:SAMPLE].astype("float32")
    model = training.compile_binary(models.lab4_cnn(), config.LEARNING_RATES["lab4"])
    weights = training.class_weights(len(y), max(1, int(y.sum())))
    ram = seconds(lambda: model.fit(x, y, batch_size=batch, epochs=1, verbose=0, class_weight=weights)) / len(y)
    stream = tfrecords.dataset("train", batch, training=True, preprocess=None, records_dir=records)
    steps = math.ceil(SAMPLE / batch)
    tfr = seconds(lambda: model.fit(stream, steps_per_epoch=steps, epochs=1, verbose=0,
                                    class_weight=weights)) / (steps * batch)
    score = seconds(lambda: model.predict(x, batch_size=256, verbose=0)) / len(y)
    return {"lab4 epoch, RAM": ram, "lab4 epoch, TFRecord": tfr, "lab4 scoring": score}


def transfer_costs(profile: config.Profile, splits: dict, batch: int) -> dict[str, float]:
    """Seconds per image: bottleneck extraction, a head epoch on cached vectors, a fine-tuning epoch."""
    backbone = "resnet50"
    keras.utils.set_random_seed(config.SEED)
    model = models.transfer_model(backbone, weights=None, input_size=profile.transfer_input_size)
    x, y = splits["train"].images[:SAMPLE // 4], splits["train"].labels[:SAMPLE // 4].astype("float32")
    extractor = surgery.cut(model, bottleneck.bottleneck_layer(model))
    extract = seconds(lambda: extractor.predict(x, batch_size=batch, verbose=0), repeats=1) / len(x)
    vectors = extractor.predict(x, batch_size=batch, verbose=0)
    head = keras.Model(model.get_layer(bottleneck.bottleneck_layer(model)).output, model.outputs[0])
    training.compile_binary(head, config.LEARNING_RATES["head"])
    many = np.repeat(vectors, 32, axis=0)
    head_epoch = seconds(lambda: head.fit(many, np.repeat(y, 32), batch_size=batch, epochs=1, verbose=0)) / len(many)
    training.setup_phase(model, "finetune", backbone)
    training.compile_binary(model, config.LEARNING_RATES["finetune"])
    finetune = seconds(lambda: model.fit(x, y, batch_size=batch, epochs=1, verbose=0), repeats=1) / len(x)
    return {"bottleneck extraction": extract, "head epoch (cached)": head_epoch, "fine-tuning epoch": finetune,
            "transfer scoring": extract}


def cam_cost(profile: config.Profile) -> tuple[float, int]:
    """Seconds per photo of top-3 labels and three Grad-CAM heatmaps, and the photos in img_in/."""
    model = backbones.build(profile.cam_backbone, include_top=True, weights=None,
                            input_shape=(profile.cam_input_size, profile.cam_input_size, 3))
    photos, _ = images.load_folder(config.IMG_IN)
    x = backbones.preprocess_input(profile.cam_backbone)(
        images.to_batch([p.rgb for p in photos], profile.cam_input_size))
    gradcam = cam.GradCAM(model, backbones.DEFAULT_CAM_LAYERS.get(profile.cam_backbone))
    chosen = cam.targets(("cat", "dog"))
    return seconds(lambda: cam.explain(gradcam, x, chosen), repeats=1) / max(1, len(photos)), len(photos)


def project(profile: config.Profile, c: dict[str, float], photos: int) -> dict[str, float]:
    """Projected minutes per notebook of ``profile`` at its full-CIFAR-10 sizes (every epoch run)."""
    n = sizes(profile)
    total = sum(n.values())
    lab4_runs = 2 * profile.lab4_seeds
    nb02 = lab4_runs * (profile.lab4_epochs * n["train"] * (c["lab4 epoch, RAM"] + c["lab4 epoch, TFRecord"]) / 2
                        + (n["val"] + n["test"] + profile.lab4_epochs * n["val"]) * c["lab4 scoring"])
    nb03 = ((n["train"] + n["val"]) * c["bottleneck extraction"]
            + profile.epochs_head * n["train"] * c["head epoch (cached)"]
            + profile.epochs_finetune * (n["train"] * c["fine-tuning epoch"] + n["val"] * c["transfer scoring"])
            + (n["val"] + n["test"]) * c["transfer scoring"])
    return {"01": total * c["write records"] / 60, "02": nb02 / 60, "03": nb03 / 60,
            "04": photos * c["grad-cam per photo"] / 60}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", default=None, help="CIFAR-10 source (default: $LAB5_CIFAR10 or Keras' cache)")
    args = parser.parse_args()
    splits = cifar10.prepare_splits(cifar10.load(args.source), config.profile("full"))
    examples = sum(len(s.labels) for s in splits.values())
    rows, minutes = {}, {}
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        tfrecords.write_splits(splits, Path(tmp), progress=False)
        write = (time.perf_counter() - start) / examples
        for name, profile in config.PROFILES.items():
            costs = {"write records": write, **lab4_costs(splits, Path(tmp), profile.batch_size),
                     **transfer_costs(profile, splits, profile.batch_size)}
            costs["grad-cam per photo"], photos = cam_cost(profile)
            rows[name] = costs
            minutes[name] = project(profile, costs, photos)
            print(f"measured {name} ({profile.transfer_input_size} px transfer, {profile.cam_backbone} at "
                  f"{profile.cam_input_size} px for Grad-CAM)", flush=True)
    print(f"\nMilliseconds per image (per photo for Grad-CAM), measured on {examples:,} images of "
          f"{args.source or config.CIFAR10_SOURCE or 'CIFAR-10'}:")
    phases = list(next(iter(rows.values())))
    print(f"{'phase':<24}" + "".join(f"{name:>12}" for name in rows))
    for phase in phases:
        print(f"{phase:<24}" + "".join(f"{1000 * rows[name][phase]:>12.2f}" for name in rows))
    print("\nProjected minutes at full CIFAR-10 size (the profile's share of it; every epoch run):")
    print(f"{'profile':<10}{'images':>24}" + "".join(f"{nb:>8}" for nb in ("01", "02", "03", "04")) + f"{'total':>9}")
    for name, per in minutes.items():
        n = sizes(config.PROFILES[name])
        print(f"{name:<10}{n['train']:>10,} / {n['val']:>5,} / {n['test']:>5,}"
              + "".join(f"{per[nb]:>8.1f}" for nb in ("01", "02", "03", "04")) + f"{sum(per.values()):>9.1f}")
    print("projected total minutes: " + " ".join(f"{name}={sum(per.values()):.0f}" for name, per in minutes.items()))


if __name__ == "__main__":
    main()
