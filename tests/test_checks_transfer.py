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


def upsampled_lambda_model():  # resize by UpSampling2D after a Lambda preprocess_input: the same meaning
    conv_base = base()
    inputs = keras.Input(config.IMAGE_SHAPE)
    x = keras.layers.Lambda(keras.applications.mobilenet.preprocess_input)(inputs)
    x = keras.layers.UpSampling2D(SIZE // 32)(x)
    x = keras.layers.Flatten()(conv_base(x, training=False))
    return keras.Model(inputs, keras.layers.Dense(1, activation="sigmoid")(x))


def preprocessed_by(layer, backbone=BACKBONE, size=SIZE):  # resize, then `layer` in place of preprocess_input
    conv_base = backbones.build(backbone, include_top=False, weights=None, input_shape=(size, size, 3),
                                name="conv_base")
    inputs = keras.Input(config.IMAGE_SHAPE)
    x = layer(keras.layers.Resizing(size, size)(inputs)) if layer is not None else keras.layers.Resizing(size, size)(inputs)
    x = keras.layers.GlobalAveragePooling2D()(conv_base(x, training=False))
    return keras.Model(inputs, keras.layers.Dense(1, activation="sigmoid")(x))


def softmax_model():  # softmax over a single unit: 1.0 whatever the image
    conv_base = base()
    inputs = keras.Input(config.IMAGE_SHAPE)
    x = models.BackbonePreprocess(BACKBONE)(keras.layers.Resizing(SIZE, SIZE)(inputs))
    x = keras.layers.GlobalAveragePooling2D()(conv_base(x, training=False))
    return keras.Model(inputs, keras.layers.Dense(1, activation="softmax")(x))


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


def freeze_convolutions_only(model):  # BatchNormalization's gamma and beta left training: wrong
    for layer in model.get_layer("conv_base").layers:
        layer.trainable = not isinstance(layer, (keras.layers.Conv2D, keras.layers.DepthwiseConv2D))


def unfreeze_all(model, pattern):  # the pattern forgotten: all of conv_base trains, BatchNormalization excepted
    for layer in model.get_layer("conv_base").layers:
        layer.trainable = not isinstance(layer, keras.layers.BatchNormalization)


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


@pytest.mark.parametrize("build", [notebook_model, other_head_model, upsampled_lambda_model])
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
    with pytest.raises(SelfCheckError, match="a softmax over one unit is always 1"):
        check.check_model(softmax_model(), BACKBONE, SIZE)


@pytest.mark.parametrize("backbone, layer, message", [
    ("resnet50", keras.layers.Rescaling(1 / 255), r"conv_base receives pixels scaled to \[0, 1\] \(Rescaling\(1/255\)\?\)"),
    ("resnet50", None, "conv_base receives the raw pixels 0-255"),
    ("resnet50", keras.layers.Rescaling(1 / 127.5, offset=-1), r"pixels scaled to \[-1, 1\] \(x / 127.5 - 1"),
    (BACKBONE, keras.layers.Rescaling(1 / 255), r"pixels scaled to \[0, 1\].*\(relative error 1.0e\+00, must stay under 0.0001\)"),
    (BACKBONE, keras.layers.Lambda(keras.applications.resnet50.preprocess_input), "as Caffe-trained models want them"),
    (BACKBONE, keras.Sequential([models.BackbonePreprocess(BACKBONE), models.BackbonePreprocess(BACKBONE)]),
     "preprocess_input twice"),
])
def test_wrong_preprocessing_fails_naming_it(backbone, layer, message):
    size = 32 if backbone == "resnet50" else SIZE
    with pytest.raises(SelfCheckError, match=message):
        check.check_model(preprocessed_by(layer, backbone, size), backbone, size)


def test_wrong_phases_fail_naming_the_layer():
    model = notebook_model()
    with pytest.raises(SelfCheckError, match=r"conv_base layers would still train in phase 1, e\.g\. \['conv1'"):
        check.check_phase1(model)  # nothing frozen
    freeze_convolutions_only(model)
    with pytest.raises(SelfCheckError, match=r"would still train in phase 1, .*\(kinds: BatchNormalization\)"):
        check.check_phase1(model)
    freeze_flag(model)
    unfreeze_all(model, PATTERN)
    with pytest.raises(SelfCheckError, match=r"'conv1' \(Conv2D\) is trainable: only layers matching"):
        check.check_phase2(model, PATTERN)
    freeze_flag(model)
    unfreeze_keep_bn(model, PATTERN)
    with pytest.raises(SelfCheckError, match=r"'conv_dw_13_bn' \(BatchNormalization\) is trainable: BatchNormalization "
                                             r"stays frozen"):
        check.check_phase2(model, PATTERN)
    unfreeze_notebook(model, r"^conv_(dw|pw)_12")  # the wrong block
    with pytest.raises(SelfCheckError, match=r"is (frozen: it matches|trainable: only layers matching)"):
        check.check_phase2(model, PATTERN)
