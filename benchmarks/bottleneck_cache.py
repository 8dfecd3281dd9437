"""Phase 1 with cached bottlenecks vs end-to-end through the frozen ``conv_base``: seconds per frozen epoch.

    LAB5_CIFAR10=../shared/datasets/cifar10-subset/cifar-10-batches-py .venv/bin/python benchmarks/bottleneck_cache.py
    .venv/bin/python benchmarks/bottleneck_cache.py --backbone resnet50 --size 160 --profile smoke

Writes the profile's records (smoke: 900 train, 100 val images) to a temp folder, then trains the
same seeded transfer model's head twice with ``labutils.training`` (same callbacks, batch size,
class weights): end to end over raw images, and on bottleneck vectors computed once
(``labutils.bottleneck``). Epoch times are medians over ``--epochs`` epochs after a warm-up
epoch (which pays for graph tracing). Prints both, the speed-up per frozen epoch (target >= 20x),
the one-off cache cost, the epochs after which caching has paid for itself, and the largest
difference between the cached head's and the end-to-end model's test predictions.
A backbone's cost does not depend on its weights: ``--weights none`` (the default) measures
ResNet50 where its ImageNet weights are not cached.
"""
from __future__ import annotations

import argparse
import os
import statistics
import tempfile
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras
import numpy as np

from labutils import bottleneck, cifar10, config, evaluation, models, surgery, tfrecords, training


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backbone", default="resnet50")
    parser.add_argument("--size", type=int, default=96, help="input size of the backbone (default 96)")
    parser.add_argument("--weights", default="none", help="'imagenet', 'none' or a weights file")
    parser.add_argument("--profile", default="smoke", help="which images: the profile's train/val split")
    parser.add_argument("--epochs", type=int, default=3, help="timed epochs after the warm-up epoch")
    args = parser.parse_args()
    weights = None if args.weights.lower() == "none" else args.weights
    profile = config.profile(args.profile)

    with tempfile.TemporaryDirectory(prefix="lab5-bottleneck-") as tmp:
        records = Path(tmp) / "records"
        config.CHECKPOINTS_DIR, config.LOGS_DIR = Path(tmp) / "checkpoints", Path(tmp) / "logs"
        tfrecords.write_splits(cifar10.prepare_splits(cifar10.load(), profile), records, progress=False)
        entry = tfrecords.read_manifest(records)["splits"]["train"]
        n_val = tfrecords.num_examples("val", records)
        class_weight = training.class_weights(entry["examples"], entry["cats"])
        batch, epochs = profile.batch_size, 1 + args.epochs
        px = lambda split, **kw: training.pixels(split, batch, records_dir=records, **kw)

        def frozen_model() -> keras.Model:
            keras.utils.set_random_seed(config.SEED)
            model = models.transfer_model(args.backbone, weights=weights, input_size=args.size)
            training.setup_phase(model, "head", args.backbone)
            return model

        direct = frozen_model()
        e2e = training.fit(direct, px("train", training=True), px("val"), epochs=epochs,
                           steps_per_epoch=training.steps(entry["examples"], batch), run_name="end_to_end",
                           learning_rate=config.LEARNING_RATES["head"], class_weight=class_weight, verbose=0)
        cached_model = frozen_model()
        cached = bottleneck.train_head(cached_model, px("train"), px("val"), epochs=epochs, run_name="cached",
                                       learning_rate=config.LEARNING_RATES["head"], batch_size=batch,
                                       class_weight=class_weight, verbose=0)

        # Same head weights in an end-to-end frozen model: predictions must agree.
        direct.get_layer(models.HEAD).set_weights(cached_model.get_layer(models.HEAD).get_weights())
        end_to_end_scores = evaluation.predict(direct, "test", records_dir=records)
        vectors, _ = bottleneck.features(surgery.cut(cached_model, models.BOTTLENECK), tfrecords.dataset(
            "test", batch, preprocess=None, with_index=True, records_dir=records))
        order = np.argsort(np.concatenate([i.numpy() for *_, i in tfrecords.dataset(
            "test", batch, preprocess=None, with_index=True, records_dir=records)]))
        head_scores = cached_model.get_layer(models.HEAD).predict(vectors, verbose=0).ravel()[order]
        max_diff = float(np.max(np.abs(head_scores - end_to_end_scores.scores)))

    t_e2e = statistics.median(e2e.epoch_seconds[1:])
    t_cached = statistics.median(cached.epoch_seconds[1:])
    break_even = cached.setup_seconds / max(t_e2e - t_cached, 1e-9)
    print(f"{args.backbone} {args.size}x{args.size}, weights={weights}, profile {profile.name}: "
          f"{entry['examples']} train + {n_val} val images, batch {batch}")
    print(f"  end to end, frozen conv_base : {t_e2e:8.3f} s/epoch")
    print(f"  head on cached bottlenecks   : {t_cached:8.3f} s/epoch   speed-up {t_e2e / t_cached:.1f}x per frozen epoch")
    print(f"  cache (one forward pass)     : {cached.setup_seconds:8.3f} s once  -> pays off after {break_even:.1f} epochs")
    print(f"  max |p_cached - p_end_to_end| on {len(head_scores)} test images: {max_diff:.2e}"
          f" (scores spread: std {head_scores.std():.3f})")


if __name__ == "__main__":
    main()
