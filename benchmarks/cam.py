"""What a batch of Grad-CAM heatmaps costs next to one batched forward pass.

    KERAS_HOME=<copy of ../shared/keras_home> .venv/bin/python -m benchmarks.cam
    .venv/bin/python -m benchmarks.cam --backbone vgg16 --size 224 --weights none

Prints, side by side, median wall-clock times of: the model's forward pass on
the batch (as a ``tf.function`` graph, through ``predict_on_batch``, and op
by op in eager mode); labutils.cam heatmaps (graphs too) for the top-1 class,
and for top-1 + cat + dog groups, on the same batch; and, for scale, the
classic eager recipe (one full-model tape per image). Ratios are to the
``tf.function`` forward pass; the issue's target is heatmaps <= 1.3x.
Images are the shared photos (``--images``), repeated to fill the batch.
VGG16's cost does not depend on its weights, so ``--weights none`` measures
it where ImageNet weights are not cached.
"""
from __future__ import annotations

import argparse
import os
import statistics
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from labutils import backbones, cam, images  # noqa: E402

SHARED_IMAGES = Path(__file__).resolve().parents[2] / "shared" / "images"


def timed(fns: dict, repeats: int) -> dict[str, float]:
    """Median seconds of each ``fns[name]()`` over ``repeats`` rounds, after a warm-up round.

    The candidates take turns within each round, so a load change on the
    machine (other jobs share its 2 cores) hits them all alike.
    """
    times: dict[str, list[float]] = {name: [] for name in fns}
    for round_ in range(repeats + 1):
        for name, fn in fns.items():
            start = time.perf_counter()
            fn()
            if round_:
                times[name].append(time.perf_counter() - start)
    return {name: statistics.median(t) for name, t in times.items()}


def per_image(model, layer: str, x: np.ndarray) -> None:
    """The usual one-image-at-a-time recipe: the whole model under the tape."""
    grad_model = tf.keras.Model(model.inputs[0], [model.get_layer(layer).output, model.outputs[0]])
    for i in range(len(x)):
        with tf.GradientTape() as tape:
            features, probs = grad_model(x[i:i + 1], training=False)
            score = probs[:, int(tf.argmax(probs[0]))]
        grads = tape.gradient(score, features)
        tf.nn.relu(tf.reduce_sum(tf.reduce_mean(grads, axis=(1, 2), keepdims=True) * features, -1)).numpy()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--backbone", default="mobilenet_025")
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--weights", default="imagenet", help='"imagenet" or "none"')
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--images", type=Path, default=SHARED_IMAGES)
    args = parser.parse_args()

    weights = None if args.weights.lower() == "none" else args.weights
    model = backbones.build(args.backbone, include_top=True, weights=weights,
                            input_shape=(args.size, args.size, 3))
    photos, _ = images.load_folder(args.images)
    rgb = [photos[i % len(photos)].rgb for i in range(args.batch)] if photos else \
        [np.random.default_rng(0).integers(0, 256, (args.size, args.size, 3), np.uint8)] * args.batch
    x = tf.constant(backbones.preprocess_input(args.backbone)(images.to_batch(rgb, args.size)))
    gradcam = cam.GradCAM(model, backbones.DEFAULT_CAM_LAYERS.get(args.backbone))

    forward_graph = tf.function(lambda batch: model(batch, training=False))
    seconds = timed({
        "forward pass, tf.function": lambda: forward_graph(x).numpy(),
        "forward pass, predict_on_batch": lambda: model.predict_on_batch(x),
        "forward pass, eager model(x)": lambda: model(x, training=False).numpy(),
        "heatmaps, top-1": lambda: gradcam(x, cam.targets(())),
        "heatmaps, top-1 + cat + dog": lambda: gradcam(x, cam.targets()),
    }, args.repeats)
    seconds["per-image eager recipe, top-1"] = timed(
        {"": lambda: per_image(model, gradcam.layer, x.numpy())}, max(1, args.repeats // 3))[""]
    forward = seconds["forward pass, tf.function"]
    print(f"{args.backbone} @ {args.size}, weights={weights}, layer {gradcam.layer}, batch {args.batch}, "
          f"{tf.config.threading.get_intra_op_parallelism_threads() or os.cpu_count()} threads")
    print(f"{'':34s} {'ms/batch':>10s} {'ms/image':>10s} {'x forward':>10s}")
    for name, s in seconds.items():
        print(f"{name:34s} {1000 * s:10.1f} {1000 * s / args.batch:10.2f} {s / forward:10.2f}")


if __name__ == "__main__":
    main()
