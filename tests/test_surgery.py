"""Model surgery: cutting, grafting, freezing by name/regex/index, and the two transfer phases on ResNet50."""
from __future__ import annotations

import keras
import numpy as np
import pytest

from labutils import config, models, surgery, training


def batch(n: int = 8, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return (rng.integers(0, 256, (n, *config.IMAGE_SHAPE), dtype=np.uint8),
            (np.arange(n) % 2).astype("float32"))


@pytest.fixture()
def resnet():
    keras.utils.set_random_seed(config.SEED)
    return models.transfer_model("resnet50", weights=None, input_size=32)


def values(weights) -> list[np.ndarray]:
    return [np.array(w.numpy(), copy=True) for w in weights]


def test_cut_shares_layers_and_graft_puts_a_head_on_top():
    model = models.transfer_model("mobilenet_025", weights=None, input_size=64)
    extractor = surgery.cut(model, "pool")
    assert extractor.output.shape == (None, 256)
    assert extractor.get_layer("conv_base") is model.get_layer("conv_base")  # removing layers copies nothing
    inner = surgery.cut(model.get_layer("conv_base"), "conv_pw_6_relu")  # cut inside a backbone too
    assert inner.output.shape[-1] == 128

    new_head = [keras.layers.Dense(3, activation="softmax", name="three_classes")]
    grafted = surgery.graft(extractor, new_head, name="grafted")
    x, _ = batch(4)
    assert grafted.output.shape == (None, 3) and grafted.name == "grafted"
    # Same layers, but one graph vs two calls (predict batches and fuses differently): float32 round-off,
    # relative 1e-5 on softmax outputs; the predicted classes exactly.
    grafted_out, two_step = grafted.predict(x, verbose=0), new_head[0](extractor.predict(x, verbose=0)).numpy()
    np.testing.assert_allclose(grafted_out, two_step, rtol=1e-5, atol=1e-7)
    np.testing.assert_array_equal(grafted_out.argmax(axis=-1), two_step.argmax(axis=-1))


def test_freeze_and_unfreeze_by_name_regex_and_index_range():
    model = models.lab4_cnn()
    convs = lambda: {name for name in surgery.trainable_layers(model) if "conv" in name}
    assert surgery.freeze(model, names=["block1_conv1", "block3_bn2"]) == ["block1_conv1", "block3_bn2"]
    assert not model.get_layer("block3_bn2").trainable and model.get_layer("block1_conv2").trainable
    assert surgery.freeze(model, pattern=r"^block2_conv") == ["block2_conv1", "block2_conv2"]
    n = len(model.layers)
    assert surgery.freeze(model, index_range=(n - 2, None)) == ["head_dropout", "cat"]
    assert convs() == {"block1_conv2", "block3_conv1", "block3_conv2"}
    assert "cat" not in surgery.trainable_layers(model) and "block1_bn1" in surgery.trainable_layers(model)

    first_two_blocks = (0, [layer.name for layer in model.layers].index("block2_bn1"))
    assert surgery.unfreeze(model, pattern="conv1$", index_range=first_two_blocks) == ["block1_conv1", "block2_conv1"]
    assert convs() == {"block1_conv1", "block1_conv2", "block2_conv1", "block3_conv1", "block3_conv2"}
    with pytest.raises(ValueError, match="no layer named"):
        surgery.freeze(model, names=["nope"])

    surgery.freeze(model)
    assert model.trainable_weights == [] and surgery.trainable_layers(model) == []
    surgery.unfreeze(model, keep_batchnorm_frozen=False)
    # 6 convolution kernels (no bias: batch norm follows) + 6 x (gamma, beta) + the output layer's kernel and bias
    assert len(model.trainable_weights) == 6 + 12 + 2


def test_summary_counts_every_parameter_once():
    model = models.lab4_cnn()
    surgery.freeze(model, pattern="^block")
    trainable = surgery.count(model.get_layer("cat").weights)
    assert surgery.summary(model) == (f"lab4_cnn: {model.count_params():,} parameters = {trainable:,} trainable"
                                      f" + {model.count_params() - trainable:,} frozen")


def test_phase_one_trains_the_head_and_leaves_conv_base_bit_identical(resnet):
    assert training.setup_phase(resnet, "head", "resnet50") == []
    conv_base, head = resnet.get_layer("conv_base"), resnet.get_layer("head")
    assert conv_base.trainable_weights == [] and surgery.trainable_layers(conv_base) == []
    assert {id(w) for w in resnet.trainable_weights} == {id(w) for w in head.trainable_weights}
    before_base, before_head = values(conv_base.weights), values(head.weights)

    training.compile_binary(resnet, 1e-2)
    resnet.train_on_batch(*batch())

    assert all(np.array_equal(a, b) for a, b in zip(before_base, values(conv_base.weights)))  # BN stats too
    assert not np.array_equal(before_head[-2], head.weights[-2].numpy())  # the Dense kernel learnt


def test_phase_two_unfreezes_only_conv5_without_batchnorm(resnet):
    training.setup_phase(resnet, "head", "resnet50")
    unfrozen = training.setup_phase(resnet, "finetune", "resnet50")
    conv_base = resnet.get_layer("conv_base")
    trainable = surgery.trainable_layers(conv_base)
    assert trainable and sorted(trainable) == sorted(n for n in unfrozen if conv_base.get_layer(n).weights)
    assert all(name.startswith("conv5_") for name in trainable)
    assert not any(isinstance(conv_base.get_layer(n), keras.layers.BatchNormalization) for n in unfrozen)
    conv5_convs = [l.name for l in conv_base.layers if l.name.startswith("conv5_") and isinstance(l, keras.layers.Conv2D)]
    assert sorted(trainable) == sorted(conv5_convs) and len(conv5_convs) == 10  # 3 blocks x 3 + shortcut
    assert resnet.get_layer("head").trainable_weights


def test_fine_tuning_changes_conv5_but_no_batchnorm_statistics(resnet):
    training.setup_phase(resnet, "finetune", "resnet50")
    conv_base = resnet.get_layer("conv_base")
    bns = [l for l in conv_base.layers if isinstance(l, keras.layers.BatchNormalization)]
    bn_before = values(w for l in bns for w in l.weights)  # gamma, beta, moving mean and variance
    conv5_before = values(conv_base.get_layer("conv5_block3_3_conv").weights)
    conv4_before = values(conv_base.get_layer("conv4_block6_3_conv").weights)

    training.compile_binary(resnet, 1e-2)
    x, y = batch(16)
    for _ in range(2):
        resnet.train_on_batch(x, y)

    assert all(np.array_equal(a, b) for a, b in zip(bn_before, values(w for l in bns for w in l.weights)))
    assert not np.array_equal(conv5_before[0], conv_base.get_layer("conv5_block3_3_conv").weights[0].numpy())
    assert all(np.array_equal(a, b) for a, b in
               zip(conv4_before, values(conv_base.get_layer("conv4_block6_3_conv").weights)))


def test_unlisted_backbone_fine_tunes_its_top_tenth():
    model = models.transfer_model("mobilenet_025", weights=None, input_size=64)
    conv_base = model.get_layer("conv_base")
    n = len(conv_base.layers)
    top = surgery.select(conv_base, pattern=training.finetune_pattern("some_new_backbone", conv_base))
    assert top == conv_base.layers[n - n // 10:]  # the last 10 % of layers, by name
    assert training.finetune_pattern("mobilenet_025", conv_base) == config.FINETUNE_LAYERS["mobilenet_025"]
