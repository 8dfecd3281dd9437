"""Training loops shared by notebooks 02 and 03: compile, class weights, callbacks, the two transfer phases.

Every run keeps the best weights by validation ROC-AUC (``config.MONITOR``): a ModelCheckpoint
writes them to ``records/checkpoints/<run>.weights.h5``, EarlyStopping stops when they stop
improving (never before ``config.MIN_EPOCHS``), ReduceLROnPlateau halves the learning rate when
that stalls (``config.LR_PLATEAU``), and after ``fit`` the model holds the best weights again.
TensorBoard logs go to ``records/logs/<run>``. :func:`fit` does all of it in one call; a notebook
that shows the Keras workflow compiles and fits itself with :func:`epoch_metrics`,
:func:`callbacks` and :func:`finish`.
"""
from __future__ import annotations

import dataclasses
import math
import re
import time
from collections.abc import Sequence
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from labutils import config, course, surgery, tfrecords


def epoch_metrics() -> list[keras.metrics.Metric]:
    """The imbalance-aware metrics Keras logs every epoch: ROC-AUC (``config.MONITOR`` watches its
    validation value), PR-AUC, precision, recall and accuracy, for a (B, 1) cat probability."""
    return [keras.metrics.AUC(name="roc_auc"), keras.metrics.AUC(curve="PR", name="pr_auc"),
            keras.metrics.Precision(name="precision"), keras.metrics.Recall(name="recall"),
            keras.metrics.BinaryAccuracy(name="accuracy")]


def compile_binary(model: keras.Model, learning_rate: float) -> keras.Model:
    """Adam at ``learning_rate`` + binary cross-entropy, with :func:`epoch_metrics`."""
    model.compile(optimizer=keras.optimizers.Adam(learning_rate), loss="binary_crossentropy",
                  metrics=epoch_metrics())
    return model


def class_weights(examples: int, cats: int) -> dict[int, float]:
    """Loss weights that give both classes the same total weight: ``examples / (2 * count)``.

    With about 10 % cats, a cat counts about 5 and a non-cat about 0.56, so the network can no
    longer score 90 % by never saying "cat".
    """
    if not 0 < cats < examples:
        raise ValueError(f"Need both classes to weight them, got {cats} cats among {examples} examples.")
    return {0: examples / (2 * (examples - cats)), 1: examples / (2 * cats)}


def steps(examples: int, batch_size: int) -> int:
    """Batches per epoch that see every example once on average (for repeated datasets)."""
    return math.ceil(examples / batch_size)


def pixels(split: str, batch_size: int, *, training: bool = False,
           records_dir: Path = config.RECORDS_DIR) -> tf.data.Dataset:
    """(images, labels) batches of ``split`` as both models take them: raw uint8 pixels 0-255.

    ``training=True``: shuffled and repeated (pass ``steps_per_epoch=steps(n, batch_size)``).
    Otherwise every example once, in order, with its number of batches declared so that Keras
    knows the epoch's length instead of warning that the input "ran out of data".
    """
    ds = tfrecords.dataset(split, batch_size, training=training, preprocess=None, records_dir=records_dir)
    if training:
        return ds
    return ds.apply(tf.data.experimental.assert_cardinality(
        steps(tfrecords.num_examples(split, records_dir), batch_size)))


class EpochTimer(keras.callbacks.Callback):
    """Wall-clock seconds of each epoch, validation included."""

    def on_train_begin(self, logs=None):
        self.seconds: list[float] = []

    def on_epoch_begin(self, epoch, logs=None):
        self._start = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        self.seconds.append(time.perf_counter() - self._start)


@dataclasses.dataclass
class Run:
    """What one ``fit`` did. ``history``: metric name -> one value per epoch run.

    ``setup_seconds``: work done once before the epochs (the bottleneck cache).
    """

    name: str
    history: dict[str, list[float]]
    epoch_seconds: list[float]
    best: float
    checkpoint: Path
    setup_seconds: float = 0.0

    @property
    def epochs(self) -> int:
        return len(self.epoch_seconds)

    @property
    def seconds(self) -> float:
        return self.setup_seconds + sum(self.epoch_seconds)


def checkpoint_path(run_name: str) -> Path:
    """Where run ``run_name`` keeps its best weights."""
    return config.CHECKPOINTS_DIR / f"{run_name}.weights.h5"


def callbacks(run_name: str, best_so_far: float | None = None, *, checkpoint: Path | None = None,
              patience: int = config.PATIENCE, min_epochs: int = config.MIN_EPOCHS) -> list[keras.callbacks.Callback]:
    """The course's callbacks for one ``model.fit`` of run ``run_name``, in this order: an
    :class:`EpochTimer`; a checkpoint of the best weights by ``config.MONITOR`` to ``checkpoint``
    (default :func:`checkpoint_path`), only overwritten by an epoch better than ``best_so_far``
    (a previous phase's best) when given; early stopping that never stops before epoch
    ``min_epochs``; a halved learning rate when the monitored value stalls; TensorBoard logs in
    ``records/logs/<run_name>``. After ``fit``, :func:`finish` loads the checkpoint.
    """
    checkpoint = checkpoint or checkpoint_path(run_name)
    checkpoint.parent.mkdir(parents=True, exist_ok=True)
    return [
        EpochTimer(),
        keras.callbacks.ModelCheckpoint(str(checkpoint), monitor=config.MONITOR, mode="max",
                                        save_best_only=True, save_weights_only=True,
                                        initial_value_threshold=best_so_far),
        keras.callbacks.EarlyStopping(monitor=config.MONITOR, mode="max", patience=patience,
                                      start_from_epoch=min_epochs, restore_best_weights=True),
        keras.callbacks.ReduceLROnPlateau(monitor=config.MONITOR, mode="max", **config.LR_PLATEAU),
        keras.callbacks.TensorBoard(log_dir=str(config.LOGS_DIR / run_name), profile_batch=0),
    ]


def fit(model: keras.Model, train, validation, *, epochs: int, run_name: str, learning_rate: float,
        initial_epoch: int = 0, steps_per_epoch: int | None = None, batch_size: int | None = None,
        class_weight: dict[int, float] | None = None, best_so_far: float | None = None,
        checkpoint: Path | None = None, verbose: int = 2) -> Run:
    """Compile ``model`` and train it from ``initial_epoch`` to ``epochs``; leave it with its best weights.

    ``train``/``validation``: a ``tf.data.Dataset`` of (images, labels) batches (a repeated one
    needs ``steps_per_epoch``) or an ``(x, y)`` pair of arrays (then ``batch_size``; shuffled
    each epoch). ``best_so_far``: the monitored value to beat (a previous phase's best); the
    checkpoint is only overwritten by a better epoch, so after the last phase it holds the best
    weights of all phases.
    """
    compile_binary(model, learning_rate)
    used = callbacks(run_name, best_so_far, checkpoint=checkpoint)
    x, y = train if isinstance(train, tuple) else (train, None)
    history = model.fit(x, y, validation_data=validation, epochs=epochs, initial_epoch=initial_epoch,
                        steps_per_epoch=steps_per_epoch, batch_size=batch_size, class_weight=class_weight,
                        shuffle=y is not None,  # arrays: Keras shuffles; datasets shuffle themselves
                        callbacks=used, verbose=verbose)
    return finish(model, history, used, best_so_far)


def finish(model: keras.Model, history: keras.callbacks.History, used: list[keras.callbacks.Callback],
           best_so_far: float | None = None) -> Run:
    """After ``model.fit(..., callbacks=used)`` (``used`` from :func:`callbacks`): load the
    checkpoint into ``model`` (the best epoch of this run, or of an earlier phase when none beat
    ``best_so_far``) and return what the run did."""
    timer = next(c for c in used if isinstance(c, EpochTimer))
    checkpoint = Path(next(c for c in used if isinstance(c, keras.callbacks.ModelCheckpoint)).filepath)
    if checkpoint.is_file():
        model.load_weights(str(checkpoint))
    scores = history.history[config.MONITOR] + ([best_so_far] if best_so_far is not None else [])
    # The run's name is its TensorBoard folder's (records/logs/<run_name>).
    name = next(Path(c.log_dir).name for c in used if isinstance(c, keras.callbacks.TensorBoard))
    return Run(name, {k: [float(v) for v in vals] for k, vals in history.history.items()},
               timer.seconds, float(np.nanmax(scores)), checkpoint)


def images_per_second(runs: Sequence[Run], images_per_epoch: int) -> float:
    """Steady training throughput (images/s): ``images_per_epoch`` over the median epoch's seconds,
    validation included, each run's first epoch left out (it traces the graph and warms up caches,
    and costs the first run of a session most: a pipeline comparison would measure the order).
    Runs of one epoch (the ``smoke`` profile) count that epoch."""
    steady = [s for run in runs for s in run.epoch_seconds[1:]] or [s for run in runs for s in run.epoch_seconds]
    return images_per_epoch / float(np.median(steady)) if steady else float("nan")


def concat(*runs: Run) -> dict[str, list[float]]:
    """The histories of consecutive runs (phases) as one, epoch after epoch."""
    keys = [k for k in runs[0].history if all(k in r.history for r in runs)]
    return {k: [v for r in runs for v in r.history[k]] for k in keys}


def finetune_pattern(backbone: str, conv_base: keras.Model) -> str:
    """The regular expression naming the ``conv_base`` layers phase 2 unfreezes: the top block
    (``config.FINETUNE_LAYERS``), or for another backbone its last 10 % of layers by name."""
    pattern = config.FINETUNE_LAYERS.get(backbone.lower())
    if pattern:
        return pattern
    top = conv_base.layers[len(conv_base.layers) - max(1, len(conv_base.layers) // 10):]
    return "^(" + "|".join(re.escape(layer.name) for layer in top) + ")$"


def setup_phase(model: keras.Model, phase: str, backbone: str) -> list[str]:
    """Freeze for ``phase``: "head" freezes all of ``conv_base``; "finetune" then unfreezes its top
    (``config.FINETUNE_LAYERS``), BatchNormalization layers excepted. Returns the layers unfrozen.
    """
    conv_base = model.get_layer(course.CONV_BASE)
    surgery.freeze(conv_base)
    if phase == "head":
        return []
    if phase == "finetune":
        return surgery.unfreeze(conv_base, pattern=finetune_pattern(backbone, conv_base))
    raise ValueError(f"phase must be 'head' or 'finetune', not {phase!r}")
