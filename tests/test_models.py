"""The two networks: shapes, scaling inside the model, the transfer model's named parts, weights files."""
from __future__ import annotations

import keras
import numpy as np
import pytest

from labutils import backbones, config, models, surgery

MOBILENET_NO_TOP = "mobilenet_2_5_224_tf_no_top.h5"


def pixels(n: int = 4, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (n, *config.IMAGE_SHAPE), dtype=np.uint8)


def test_lab4_cnn_maps_raw_pixels_to_one_probability():
    model = models.lab4_cnn()
    x = pixels()
    p = model.predict(x, verbose=0)
    assert p.shape == (4, 1) and np.all((p > 0) & (p < 1))
    # Scaling is inside: uint8 and float 0-255 inputs give the same output.
    # The cast happens first, then the identical float32 graph: equal up to a last-digit difference
    # (relative 1e-6) should a kernel pick another code path for another input dtype.
    np.testing.assert_allclose(p, model.predict(x.astype("float32"), verbose=0), rtol=1e-6, atol=0)
    kinds = [type(layer).__name__ for layer in model.layers]
    assert kinds[1] == "Rescaling" and kinds.count("Conv2D") == 6 and kinds.count("MaxPooling2D") == 3
    assert "Dropout" in kinds and kinds[-1] == "Dense" and model.layers[-1].units == 1
    assert kinds[-3] == "GlobalAveragePooling2D"  # one value per feature map feeds the output, no Flatten
    assert 100_000 < model.count_params() < 1_000_000  # small: Lab 4 trains it from scratch on CPU


def test_lab4_cnn_is_reproducible_with_the_seed():
    keras.utils.set_random_seed(config.SEED)
    a = models.lab4_cnn().get_weights()
    keras.utils.set_random_seed(config.SEED)
    b = models.lab4_cnn().get_weights()
    assert all(np.array_equal(u, v) for u, v in zip(a, b))


@pytest.mark.parametrize("backbone, size", [("resnet50", 32), ("mobilenet_025", 64)])
def test_transfer_model_has_named_parts_in_order(backbone, size):
    model = models.transfer_model(backbone, weights=None, input_size=size)
    assert [layer.name for layer in model.layers] == ["pixels", "resize", "preprocess", "conv_base", "pool", "head"]
    conv_base = model.get_layer("conv_base")
    assert isinstance(conv_base, keras.Model) and conv_base.input_shape == (None, size, size, 3)
    assert model.get_layer("resize").output.shape == (None, size, size, 3)
    head = model.get_layer("head")
    assert [type(layer).__name__ for layer in head.layers] == ["Dropout", "Dense"]
    assert head.layers[-1].units == 1 and head.layers[-1].activation.__name__ == "sigmoid"
    p = model.predict(pixels(), verbose=0)
    assert p.shape == (4, 1) and np.all((p >= 0) & (p <= 1))


def test_preprocess_layer_is_the_backbones_own():
    x = pixels().astype("float32")
    layer = models.BackbonePreprocess("resnet50")
    expected = keras.applications.resnet50.preprocess_input(x.copy())  # caffe: BGR, mean-subtracted
    np.testing.assert_allclose(keras.ops.convert_to_numpy(layer(x)), expected, atol=1e-4)
    assert not np.allclose(expected, backbones.preprocess_input("mobilenet")(x.copy()))


def test_weights_from_a_local_file_give_the_same_predictions(tmp_path):
    keras.utils.set_random_seed(1)
    original = models.transfer_model("mobilenet_025", weights=None, input_size=64)
    x = pixels(8)

    # A whole trained model's weights, restored into a fresh model.
    original.save_weights(tmp_path / "model.weights.h5")
    keras.utils.set_random_seed(2)
    restored = models.transfer_model("mobilenet_025", weights=None, input_size=64)
    restored.load_weights(tmp_path / "model.weights.h5")
    np.testing.assert_array_equal(original.predict(x, verbose=0), restored.predict(x, verbose=0))

    # The backbone's weights as a file, passed as `weights=` (the offline way to give ImageNet weights).
    original.get_layer("conv_base").save_weights(tmp_path / "conv_base.weights.h5")
    rebuilt = models.transfer_model("mobilenet_025", weights=tmp_path / "conv_base.weights.h5", input_size=64)
    features = lambda m: surgery.cut(m, models.BOTTLENECK).predict(x, verbose=0)
    np.testing.assert_array_equal(features(original), features(rebuilt))
    assert rebuilt.weights_used == str(tmp_path / "conv_base.weights.h5")


def test_imagenet_weights_load_offline_from_keras_home(keras_home):
    # 96 is not one of MobileNet's weight sizes (128-224), so Keras loads the 224 no-top file:
    # the one the shared cache has. Loading it by path must give the same weights.
    cached = models.transfer_model("mobilenet_025", weights="imagenet", input_size=96)
    by_path = models.transfer_model("mobilenet_025", weights=keras_home / "models" / MOBILENET_NO_TOP, input_size=96)
    a, b = cached.get_layer("conv_base").get_weights(), by_path.get_layer("conv_base").get_weights()
    assert len(a) == len(b) > 100 and all(np.array_equal(u, v) for u, v in zip(a, b))
    assert cached.weights_used == "imagenet"
    random = models.transfer_model("mobilenet_025", weights=None, input_size=96)
    assert not np.array_equal(random.get_layer("conv_base").get_weights()[0], a[0])


def test_missing_weights_file_is_named():
    with pytest.raises(FileNotFoundError, match="nowhere.h5"):
        models.transfer_model("mobilenet_025", weights="/nowhere.h5", input_size=64)
