"""Training: class weights, bottleneck caching == end-to-end, two phases keeping the best weights,
and real transfer learning from the shared ImageNet MobileNet (offline)."""
from __future__ import annotations

from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf

from labutils import bottleneck, config, evaluation, models, results, surgery, tfrecords, training

EPOCHS_SHORT_RUN = 6
BACKBONE, SIZE = "mobilenet_025", 96  # 96: not a MobileNet weight size, so Keras loads the cached 224 no-top file


@pytest.fixture(autouse=True)
def outputs_in_tmp(tmp_path, monkeypatch):
    """Checkpoints and TensorBoard logs of the tests go to a temp folder, not the repo's records/."""
    monkeypatch.setattr(config, "CHECKPOINTS_DIR", tmp_path / "checkpoints")
    monkeypatch.setattr(config, "LOGS_DIR", tmp_path / "logs")


def pretrained(keras_home) -> keras.Model:
    keras.utils.set_random_seed(config.SEED)
    model = models.transfer_model(BACKBONE, weights="imagenet", input_size=SIZE)
    training.setup_phase(model, "head", BACKBONE)
    return model


def cat_weights(records: Path) -> dict[int, float]:
    entry = tfrecords.read_manifest(records)["splits"]["train"]
    return training.class_weights(entry["examples"], entry["cats"])


def test_class_weights_balance_the_two_classes():
    weights = training.class_weights(1000, 100)
    assert weights == pytest.approx({0: 1000 / 1800, 1: 1000 / 200})
    assert 900 * weights[0] == pytest.approx(100 * weights[1])  # equal total weight per class
    with pytest.raises(ValueError):
        training.class_weights(10, 0)


def test_throughput_leaves_out_each_runs_first_epoch():
    run = lambda *seconds: training.Run("r", {}, list(seconds), 0.5, Path("unused"))
    # First epochs (10 s, 9 s) left out: the median of 2, 3 and 4 s per 600 images.
    assert training.images_per_second([run(10, 2, 3), run(9, 4)], 600) == 200
    assert training.images_per_second([run(6), run(4)], 600) == 120  # one-epoch runs: those epochs


def test_finite_pixel_datasets_declare_their_length(smoke_records):
    val = training.pixels("val", 32, records_dir=smoke_records)
    assert int(val.cardinality()) == training.steps(100, 32) == 4
    images, labels = next(iter(val))
    assert images.dtype == tf.uint8 and labels.dtype == tf.float32
    assert training.pixels("train", 32, training=True, records_dir=smoke_records).cardinality() == tf.data.INFINITE_CARDINALITY


def test_a_short_real_run_of_the_lab4_cnn_lowers_its_training_loss(smoke_records):
    """The recipe learns from the first epochs: real CIFAR-10 through the TFRecords, as notebook 02 trains it."""
    keras.utils.set_random_seed(config.SEED)
    model = models.lab4_cnn()
    run = training.fit(model, training.pixels("train", 32, training=True, records_dir=smoke_records),
                       training.pixels("val", 32, records_dir=smoke_records), epochs=EPOCHS_SHORT_RUN,
                       steps_per_epoch=training.steps(900, 32), class_weight=cat_weights(smoke_records),
                       learning_rate=config.LEARNING_RATES["lab4"], run_name="lab4_short", verbose=0)
    loss = run.history["loss"]
    print("training loss per epoch:", [round(v, 3) for v in loss])
    # Class-weighted cross-entropy starts near ln 2 = 0.693 (chance); a network that learns is clearly below it.
    assert len(loss) == EPOCHS_SHORT_RUN and loss[-1] < 0.9 * loss[0] and loss[-1] < 0.6


def test_bottleneck_cached_head_equals_end_to_end_frozen_model(keras_home, smoke_records):
    model = pretrained(keras_home)
    head_before = [w.numpy().copy() for w in model.get_layer("head").weights]
    px = lambda split: training.pixels(split, 32, records_dir=smoke_records)
    bottleneck.train_head(model, px("train"), px("val"), epochs=2, run_name="cached", learning_rate=1e-3,
                          batch_size=32, class_weight=cat_weights(smoke_records), verbose=0)
    head = model.get_layer("head")
    assert not np.allclose(head_before[0], head.weights[0].numpy())  # the head learnt something

    # Cached path: bottleneck vectors computed once, then the head alone.
    vectors, _ = bottleneck.features(surgery.cut(model, models.BOTTLENECK), px("test"))
    assert vectors.shape == (400, 256) and vectors.std() > 0.01  # real ImageNet features, not zeros
    cached = head.predict(vectors, verbose=0).ravel()

    # End-to-end path: a fresh frozen model with the trained head's weights, over raw test images.
    end_to_end = pretrained(keras_home)
    end_to_end.get_layer("head").set_weights(head.get_weights())
    direct = evaluation.predict(end_to_end, "test", batch_size=64, records_dir=smoke_records)
    # Same float32 computation, different batch composition (another summation order): 1e-5 in probability;
    # the decision at 0.5 must not change for any image whose score is not within that of 0.5.
    np.testing.assert_allclose(np.sort(direct.scores), np.sort(cached), atol=1e-5)
    seen = np.concatenate([i.numpy() for *_, i in tfrecords.dataset(
        "test", 32, preprocess=None, with_index=True, records_dir=smoke_records)])  # the cached order
    in_order = cached[np.argsort(seen)]
    np.testing.assert_allclose(direct.scores, in_order, atol=1e-5)
    clear = np.abs(in_order - 0.5) > 1e-5
    np.testing.assert_array_equal(direct.scores[clear] >= 0.5, in_order[clear] >= 0.5)
    assert cached.std() > 1e-3  # predictions vary from image to image: the comparison is not vacuous


def test_two_phases_keep_the_best_weights_of_both(keras_home, smoke_records):
    model = pretrained(keras_home)
    px = lambda split, **kw: training.pixels(split, 32, records_dir=smoke_records, **kw)
    weights = cat_weights(smoke_records)
    head_run = bottleneck.train_head(model, px("train"), px("val"), epochs=2, run_name="two_phase",
                                     learning_rate=config.LEARNING_RATES["head"], batch_size=32,
                                     class_weight=weights, verbose=0)
    training.setup_phase(model, "finetune", BACKBONE)
    # Phase 2 as notebook 03 shows it: compile, fit with the course's callbacks, then the best weights.
    model.compile(optimizer=keras.optimizers.Adam(config.LEARNING_RATES["finetune"]), loss="binary_crossentropy",
                  metrics=training.epoch_metrics())
    used = training.callbacks("two_phase", best_so_far=head_run.best)
    history = model.fit(px("train", training=True), validation_data=px("val"), epochs=head_run.epochs + 2,
                        initial_epoch=head_run.epochs, steps_per_epoch=training.steps(900, 32),
                        class_weight=weights, callbacks=used, verbose=0)
    fine_run = training.finish(model, history, used, best_so_far=head_run.best)
    assert fine_run.name == "two_phase" and len(fine_run.epoch_seconds) == 2
    assert float(model.optimizer.learning_rate) <= config.LEARNING_RATES["head"] / 10

    history = training.concat(head_run, fine_run)
    assert len(history[config.MONITOR]) == head_run.epochs + fine_run.epochs == 4
    assert fine_run.best == pytest.approx(max(history[config.MONITOR]))
    summary = results.summarize(head_run, fine_run)
    assert summary["epochs"] == 4 and summary["seconds_per_epoch"] == pytest.approx(
        (head_run.setup_seconds + sum(head_run.epoch_seconds) + sum(fine_run.epoch_seconds)) / 4)

    # The model left in memory is the checkpoint, and the checkpoint is the best epoch of both phases.
    assert fine_run.checkpoint == config.CHECKPOINTS_DIR / "two_phase.weights.h5"
    reloaded = models.transfer_model(BACKBONE, weights=None, input_size=SIZE)
    reloaded.load_weights(fine_run.checkpoint)
    val = evaluation.predict(model, "val", records_dir=smoke_records)
    # The same weights through the same graph and batches: equal up to float32 round-off (relative 1e-5).
    np.testing.assert_allclose(evaluation.predict(reloaded, "val", records_dir=smoke_records).scores, val.scores,
                               rtol=1e-5, atol=1e-7)
    auc = keras.metrics.AUC()  # config.MONITOR: validation ROC-AUC, as Keras computes it
    auc.update_state(val.labels, val.scores)
    assert float(auc.result()) == pytest.approx(fine_run.best, abs=1e-3)

    assert list((config.LOGS_DIR / "two_phase").rglob("events.out.tfevents.*"))  # TensorBoard logs


def real_transfer_roc_auc(weights: str | None, records: Path, shuffle_kernels: bool = False) -> float:
    """Test ROC-AUC of MobileNet 0.25 at 96x96 after 5 head epochs on cached bottlenecks."""
    keras.utils.set_random_seed(config.SEED)
    model = models.transfer_model(BACKBONE, weights=weights, input_size=SIZE)
    if shuffle_kernels:  # same weight values and BN statistics, learnt structure destroyed
        rng = np.random.default_rng(0)
        for layer in model.get_layer("conv_base").layers:
            if isinstance(layer, (keras.layers.Conv2D, keras.layers.DepthwiseConv2D)):
                layer.set_weights([rng.permutation(w.ravel()).reshape(w.shape) for w in layer.get_weights()])
    training.setup_phase(model, "head", BACKBONE)
    px = lambda split: training.pixels(split, 64, records_dir=records)
    bottleneck.train_head(model, px("train"), px("val"), epochs=5, run_name=f"real_{weights}_{shuffle_kernels}",
                          learning_rate=config.LEARNING_RATES["head"], batch_size=64,
                          class_weight=cat_weights(records), verbose=0)
    threshold = evaluation.threshold_on_validation(model, records_dir=records)
    return evaluation.evaluate(model, threshold, records_dir=records)["roc_auc"]


def test_real_imagenet_transfer_beats_random_init(keras_home, full_records):
    """All 5,506 shared CIFAR images (4,194 train, 466 val, 846 test with 84 cats)."""
    imagenet = real_transfer_roc_auc("imagenet", full_records)
    random_init = real_transfer_roc_auc(None, full_records)
    shuffled = real_transfer_roc_auc("imagenet", full_records, shuffle_kernels=True)
    print(f"test ROC-AUC: imagenet {imagenet:.3f}, weights=None {random_init:.3f}, shuffled imagenet {shuffled:.3f}")
    # Measured: 0.886, 0.500 (random MobileNet features vanish to ~1e-16), 0.579.
    assert imagenet > 0.8
    assert imagenet > random_init + 0.15 and imagenet > shuffled + 0.15
