"""How good the lab's models are on real data: test ROC-AUC and PR-AUC, with the seconds each took.

Run: ``KERAS_HOME=<copy of ../shared/keras_home> python benchmarks/quality.py [--source PATH] [--seeds 3]
[--histories FIGURE.png]``.
On the CIFAR-10 of ``--source`` (default ``$LAB5_CIFAR10``, e.g. the shared subset), cut as
the ``full`` profile cuts it, trains the Lab 4 network from arrays in RAM and from the
TFRecords with ``--seeds`` seeds each (the notebook's recipe: ``training.fit`` with its early
stopping), and the transfer model with the real ImageNet MobileNet 0.25 at 224 px (the small
backbone the shared Keras cache holds; the notebook's path: bottleneck-cached head, then the top
block fine-tuned), and prints each model's test ROC-AUC and PR-AUC (mean and spread over seeds)
and seconds. ``--histories`` also draws every Lab 4 run's training loss and validation ROC-AUC,
epoch by epoch, to a PNG file: the curves to look at before trusting the table. A benchmark: it
asserts nothing.
"""
from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402

from labutils import (bottleneck, cifar10, config, evaluation, metrics, models, plots, tfrecords,  # noqa: E402
                      training)

TRANSFER = ("mobilenet_025", 224)


def scored(model: keras.Model, records: Path) -> dict[str, float]:
    threshold = evaluation.threshold_on_validation(model, records_dir=records)
    p = evaluation.predict(model, "test", records_dir=records)
    m = metrics.binary_metrics(p.labels, p.scores, threshold)
    return {"roc_auc": m["roc_auc"], "pr_auc": m["pr_auc"]}


def lab4(pipeline: str, seed: int, splits: dict, records: Path, profile: config.Profile, work: Path) -> dict:
    keras.utils.set_random_seed(seed)
    model = models.lab4_cnn()
    n, cats = len(splits["train"].labels), int(splits["train"].labels.sum())
    common = dict(epochs=profile.lab4_epochs, class_weight=training.class_weights(n, cats),
                  learning_rate=config.LEARNING_RATES["lab4"], run_name=f"quality_{pipeline}_{seed}",
                  checkpoint=work / f"{pipeline}_{seed}.weights.h5", verbose=0)
    start = time.perf_counter()
    if pipeline == "RAM":
        (x, y), val = ((splits[s].images, splits[s].labels.astype("float32")) for s in ("train", "val"))
        run = training.fit(model, (x, y), val, batch_size=profile.batch_size, **common)
    else:
        run = training.fit(model, tfrecords.dataset("train", profile.batch_size, training=True, preprocess=None,
                                                    records_dir=records, seed=seed),
                           training.pixels("val", profile.batch_size, records_dir=records),
                           steps_per_epoch=training.steps(n, profile.batch_size), **common)
    return {**scored(model, records), "seconds": time.perf_counter() - start, "epochs": run.epochs,
            "loss": (run.history["loss"][0], min(run.history["loss"])), "history": run.history}


def transfer(splits: dict, records: Path, profile: config.Profile, work: Path) -> dict:
    backbone, size = TRANSFER
    keras.utils.set_random_seed(config.SEED)
    model = models.transfer_model(backbone, weights="imagenet", input_size=size)
    n, cats = len(splits["train"].labels), int(splits["train"].labels.sum())
    weights = training.class_weights(n, cats)
    px = lambda split, **kw: training.pixels(split, profile.batch_size, records_dir=records, **kw)
    start = time.perf_counter()
    training.setup_phase(model, "head", backbone)
    head = bottleneck.train_head(model, px("train"), px("val"), epochs=profile.epochs_head, run_name="quality_head",
                                 learning_rate=config.LEARNING_RATES["head"], batch_size=profile.batch_size,
                                 class_weight=weights, checkpoint=work / "transfer.weights.h5", verbose=0)
    training.setup_phase(model, "finetune", backbone)
    training.fit(model, px("train", training=True), px("val"), epochs=head.epochs + 2, initial_epoch=head.epochs,
                 steps_per_epoch=training.steps(n, profile.batch_size), class_weight=weights,
                 learning_rate=config.LEARNING_RATES["finetune"], best_so_far=head.best,
                 run_name="quality_transfer", checkpoint=work / "transfer.weights.h5", verbose=0)
    return {**scored(model, records), "seconds": time.perf_counter() - start}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", default=None, help="CIFAR-10 source (default: $LAB5_CIFAR10 or Keras' cache)")
    parser.add_argument("--seeds", type=int, default=3, help="seeds per Lab 4 pipeline (default 3)")
    parser.add_argument("--histories", type=Path, default=None, help="PNG file for the Lab 4 runs' curves")
    args = parser.parse_args()
    profile = config.profile("full")
    splits = cifar10.prepare_splits(cifar10.load(args.source), profile)
    print(f"{', '.join(f'{s} {len(v.labels):,}' for s, v in splits.items())} images; Lab 4: up to "
          f"{profile.lab4_epochs} epochs, {args.seeds} seeds per pipeline", flush=True)
    rows, histories = {}, {}
    with tempfile.TemporaryDirectory() as tmp:
        records, work = Path(tmp) / "records", Path(tmp)
        tfrecords.write_splits(splits, records, progress=False)
        for pipeline in ("TFRecord", "RAM"):  # the deliverable first
            runs = [lab4(pipeline, config.SEED + k, splits, records, profile, work) for k in range(args.seeds)]
            for r in runs:
                print(f"  Lab 4 from {pipeline}: ROC-AUC {r['roc_auc']:.3f}, PR-AUC {r['pr_auc']:.3f}, "
                      f"{r['epochs']} epochs, loss {r['loss'][0]:.3f} -> {r['loss'][1]:.3f}, {r['seconds']:.0f} s",
                      flush=True)
            rows[f"Lab 4 CNN from {pipeline}"] = runs
            histories.update({f"{pipeline} {config.SEED + k}": r["history"] for k, r in enumerate(runs)})
        if args.histories:
            plots.plot_histories(histories, metrics=("loss", "roc_auc")).savefig(args.histories, dpi=80)
            print(f"  curves: {args.histories}", flush=True)
        rows[f"transfer, {TRANSFER[0]} at {TRANSFER[1]} px"] = [transfer(splits, records, profile, work)]
    print(f"\n{'model':<34}{'runs':>5}{'ROC-AUC':>17}{'PR-AUC':>17}{'seconds':>10}")
    for name, runs in rows.items():
        col = lambda k: np.array([r[k] for r in runs])
        spread = lambda k: f"{col(k).mean():.3f} ± {col(k).std(ddof=1):.3f}" if len(runs) > 1 else f"{col(k)[0]:.3f}"
        print(f"{name:<34}{len(runs):>5}{spread('roc_auc'):>17}{spread('pr_auc'):>17}{col('seconds').mean():>10.0f}")


if __name__ == "__main__":
    main()
