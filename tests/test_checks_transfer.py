"""Notebook 03's self-checks judge the transfer model by its structure and by what each phase trains:
correct variants written differently pass, plausible mistakes fail with a message naming the layer."""
from __future__ import annotations

import re

import keras
import pytest

from labutils import backbones, config, models, training
from labutils.checks import SelfCheckError, transfer as check

BACKBONE, SIZE = "mobilenet_025", 64


def base():
    return backbones.build(BACKBONE, include_top=False, weights=None, input_shape=(SIZE, SIZE, 3), name="conv_base")


def notebook_model(training_flag=False):  # the notebook's solution (training_flag=None: the call forgets it)
    conv_base = base()
    inputs = keras.Input(config.IMAGE_SHAPE)
    x = keras.layers.Resizing(SIZE, SIZE)(inputs)
    x = models.BackbonePreprocess(BACKBONE)(x)
    x = conv_base(x) if training_flag is None else conv_base(x, training=training_flag)
    x = keras.layers.GlobalAveragePooling2D(name="pool")(x)
    return keras.Model(inputs, models.classifier_head(x.shape[-1])(x))


def other_head_model():  # another valid head: plain layers, other names, a hidden layer
    conv_base = base()
    inputs = keras.Input(config.IMAGE_SHAPE)
    x = models.BackbonePreprocess(BACKBONE)(keras.layers.Resizing(SIZE, SIZE)(inputs))
    x = keras.layers.GlobalMaxPooling2D()(conv_base(x, training=False))
    x = keras.layers.Dense(16, activation="relu")(x)
    return keras.Model(inputs, keras.layers.Dense(1, activation="sigmoid")(x))


def with_top_model():  # the ImageNet classifier kept
    conv_base = backbones.build(BACKBONE, include_top=True, weights=None, input_shape=(128, 128, 3), name="conv_base")
    inputs = keras.Input(config.IMAGE_SHAPE)
    x = conv_base(keras.layers.Resizing(128, 128)(inputs), training=False)
    return keras.Model(inputs, keras.layers.Dense(1, activation="sigmoid")(x))


def freeze_flag(model):
    model.get_layer("conv_base").trainable = False


def freeze_loop(model):
    for layer in model.get_layer("conv_base").layers:
        layer.trainable = False


def unfreeze_notebook(model, pattern):
    conv_base = model.get_layer("conv_base")
    conv_base.trainable = True
    for layer in conv_base.layers:
        layer.trainable = re.search(pattern, layer.name) is not None and \
            not isinstance(layer, keras.layers.BatchNormalization)


def unfreeze_keep_bn(model, pattern):  # unfreeze the block, BatchNormalization too: wrong
    conv_base = model.get_layer("conv_base")
    conv_base.trainable = True
    for layer in conv_base.layers:
        layer.trainable = re.search(pattern, layer.name) is not None


PATTERN = config.FINETUNE_LAYERS[BACKBONE]


@pytest.mark.parametrize("build", [notebook_model, other_head_model])
def test_correct_models_and_phases_pass(build):
    model = build()
    assert "called with training=False" in check.check_model(model, BACKBONE, SIZE)
    for freeze in (freeze_flag, freeze_loop):
        freeze(model)
        assert "only the head trains" in check.check_phase1(model)
        unfreeze_notebook(model, PATTERN)
        assert "BatchNormalization frozen" in check.check_phase2(model, PATTERN)
        model.get_layer("conv_base").trainable = True
        for layer in model.get_layer("conv_base").layers:
            layer.trainable = True


def test_the_reference_freezing_passes_the_checks():
    model = models.transfer_model(BACKBONE, weights=None, input_size=SIZE)
    training.setup_phase(model, "head", BACKBONE)
    check.check_phase1(model)
    training.setup_phase(model, "finetune", BACKBONE)
    check.check_phase2(model, training.finetune_pattern(BACKBONE, model.get_layer("conv_base")))


def test_wrong_models_fail_saying_what_differs():
    with pytest.raises(SelfCheckError, match="not called with training=False"):
        check.check_model(notebook_model(training_flag=None), BACKBONE, SIZE)
    with pytest.raises(SelfCheckError, match="include_top=False"):
        check.check_model(with_top_model(), BACKBONE, 128)
    renamed = notebook_model()
    renamed.get_layer("conv_base").name = "backbone"
    with pytest.raises(SelfCheckError, match="no layer named 'conv_base'"):
        check.check_model(renamed, BACKBONE, SIZE)


def test_wrong_phases_fail_naming_the_layer():
    model = notebook_model()
    with pytest.raises(SelfCheckError, match=r"conv_base layers would still train in phase 1, e\.g\. \['conv1'"):
        check.check_phase1(model)  # nothing frozen
    freeze_flag(model)
    unfreeze_keep_bn(model, PATTERN)
    with pytest.raises(SelfCheckError, match=r"'conv_dw_13_bn' \(BatchNormalization\) is trainable: BatchNormalization "
                                             r"stays frozen"):
        check.check_phase2(model, PATTERN)
    unfreeze_notebook(model, r"^conv_(dw|pw)_12")  # the wrong block
    with pytest.raises(SelfCheckError, match=r"is (frozen: it matches|trainable: only layers matching)"):
        check.check_phase2(model, PATTERN)
