"""The self-checks before and after "a check that passes means the exercise is right":
``python benchmarks/checks.py [--before 06d3f55]`` (needs git and LAB5_CIFAR10, KERAS_HOME as the tests have them).

For each likely wrong solution the tests hold (``tests/test_checks_*.py``), what the check said at
``--before`` (its module loaded from git) and what it says now; then each check's seconds on a correct
solution, before and now, after a warm-up (smoke profile data). Prints; asserts nothing.
"""
from __future__ import annotations

import argparse
import contextlib
import io
import subprocess
import sys
import tempfile
import time
import types
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))  # the correct and wrong solutions the tests hold

import keras  # noqa: E402

import test_checks_gradcam as g  # noqa: E402
import test_checks_pipeline as p  # noqa: E402
import test_checks_records as r  # noqa: E402
import test_checks_transfer as t  # noqa: E402
from labutils import backbones, cam, cifar10, config, images, models, tfrecords  # noqa: E402
from labutils.checks import gradcam, pipeline, records, transfer  # noqa: E402

WIDTH = 110  # characters of a message shown


def at_commit(module: types.ModuleType, commit: str) -> types.ModuleType:
    """``module`` as it was at ``commit``."""
    path = f"labutils/checks/{Path(module.__file__).name}"
    text = subprocess.run(["git", "show", f"{commit}:{path}"], cwd=REPO, capture_output=True, text=True,
                          check=True).stdout
    old = types.ModuleType(f"before_{module.__name__.rsplit('.', 1)[-1]}")
    exec(compile(text, f"{commit}:{path}", "exec"), old.__dict__)
    return old


def said(run) -> str:
    """What a check said: its OK line, or the exception's type and message, on one line."""
    try:
        with contextlib.redirect_stdout(io.StringIO()):  # a passed check prints its OK line too
            text = str(run())
    except Exception as err:  # an old check may fail in any way: that is what it said
        text = f"{type(err).__name__}: {err}"
    text = " ".join(text.split())
    return text if len(text) <= WIDTH else text[:WIDTH - 3] + "..."


def data(tmp: Path) -> dict:
    """The smoke splits, their records, and the Grad-CAM setup of tests/test_checks_gradcam.py."""
    splits = cifar10.prepare_splits(cifar10.load(), config.profile("smoke"))
    tfrecords.write_splits(splits, tmp / "records", progress=False)
    model = backbones.build("mobilenet_025", include_top=True, weights="imagenet", input_shape=(128, 128, 3))
    photos, _ = images.load_folder(config.IMG_IN)
    x = backbones.preprocess_input("mobilenet_025")(images.to_batch([photos[0].rgb], 128))
    return {"train": splits["train"], "records": tmp / "records", "cam": (model, cam.find_layer(model), x)}


def cases(d: dict) -> list[tuple[str, str, type, object]]:
    """(exercise, wrong solution, check module, call(module)) for each wrong solution."""
    rec, train, (model, layer, x) = d["records"], d["train"], d["cam"]
    rows = [("make_example", name, records, lambda m, f=f: m.check_make_example(f, train))
            for name, f in [("pixels as float32 in [0, 1]", r.scaled), ("stored channels first", r.channels_first)]]
    rows += [("parse_batch", name, records, lambda m, f=f: m.check_parse_batch(f, records_dir=rec))
             for name, f in [("labels (B, 1)", r.parse_column_labels), ("labels halved", r.parse_halved_labels),
                             ("read channels first, transposed", r.parse_channels_first)]]
    rows += [("training_dataset", name, pipeline,
              lambda m, f=f: m.check_training_dataset(f(rec, 32), batch_size=32, records_dir=rec))
             for name, f in [("only the shard list shuffled", p.shard_list_shuffled_only),
                             ("whole batches shuffled", p.batches_shuffled),
                             ("tiny buffer, one shard at a time", p.tiny_buffer_one_shard_at_a_time)]]
    rows += [("build_transfer_model", name, transfer,
              lambda m, b=b, l=l, s=s: m.check_model(t.preprocessed_by(l, b, s), b, s))
             for name, b, l, s in [("Rescaling(1/255) into ResNet50", "resnet50", keras.layers.Rescaling(1 / 255), 32),
                                   ("raw pixels into ResNet50", "resnet50", None, 32),
                                   ("ResNet50's (Caffe) preprocessing into MobileNet", t.BACKBONE,
                                    keras.layers.Lambda(keras.applications.resnet50.preprocess_input), t.SIZE)]]
    rows.append(("build_transfer_model", "softmax over one unit", transfer,
                 lambda m: m.check_model(t.softmax_model(), t.BACKBONE, t.SIZE)))
    rows += [("make_gradcam_heatmap", name, gradcam, lambda m, f=f: m.check_heatmap(f, model, layer, x))
             for name, f in [("no ReLU", g.no_relu), ("min-max in place of ReLU", g.min_max_no_relu),
                             ("gradient's maximum, not mean", g.max_of_gradient),
                             ("weights pooled over the rows only", g.pooled_over_rows),
                             ("gradient not pooled", g.not_pooled), ("pred_index ignored", g.ignores_pred_index),
                             ("class 0 when pred_index is None", g.class_zero_by_default),
                             ("tf.argmax over the batch axis", g.argmax_over_the_batch)]]
    return rows


def costs(d: dict) -> list[tuple[str, types.ModuleType, object]]:
    """(check, module, call(module)) on a correct solution."""
    rec, train, (model, layer, x) = d["records"], d["train"], d["cam"]
    resnet = models.transfer_model("resnet50", weights=None, input_size=160)  # the full profile's backbone
    small = t.notebook_model()
    return [("check_make_example", records, lambda m: m.check_make_example(r.reordered, train)),
            ("check_parse_batch", records, lambda m: m.check_parse_batch(r.parse_whole_batch, records_dir=rec)),
            ("check_training_dataset", pipeline,
             lambda m: m.check_training_dataset(p.lab_chain(rec, 32), batch_size=32, records_dir=rec)),
            ("check_model (mobilenet_025 at 64)", transfer, lambda m: m.check_model(small, t.BACKBONE, t.SIZE)),
            ("check_model (resnet50 at 160)", transfer, lambda m: m.check_model(resnet, "resnet50", 160)),
            ("check_heatmap", gradcam, lambda m: m.check_heatmap(g.keras_io, model, layer, x))]


def seconds(run) -> float:
    start = time.perf_counter()
    said(run)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before", default="06d3f55", help="the commit whose checks are 'before'")
    args = parser.parse_args()
    old = {m: at_commit(m, args.before) for m in (records, pipeline, transfer, gradcam)}
    with tempfile.TemporaryDirectory() as tmp:
        d = data(Path(tmp))
        for exercise, wrong, module, call in cases(d):
            before, after = said(lambda: call(old[module])), said(lambda: call(module))
            print(f"{exercise} | {wrong}\n  before: {before}\n  after:  {after}")
        print(f"\nseconds on a correct solution (after a warm-up), checks at {args.before} and now:")
        for name, module, call in costs(d):
            said(lambda: call(module))
            before, now = seconds(lambda: call(old[module])), seconds(lambda: call(module))
            print(f"  {name:<36} before {before:6.2f} s   now {now:6.2f} s   added {now - before:+6.2f} s")


if __name__ == "__main__":
    main()
