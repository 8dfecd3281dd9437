"""Grad-CAM (labutils.cam), overlays (labutils.overlay) and notebook 04, on known answers and real photos."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import cv2
import keras
import nbformat
import numpy as np
import pytest
from PIL import Image

from labutils import cam, config, images, overlay

REPO = Path(__file__).resolve().parents[1]
CAT, DOG = config.IMAGENET_GROUPS["cat"], config.IMAGENET_GROUPS["dog"]


# --- A model whose answer is known -----------------------------------------------------------

def quadrant_model(final: str = "dense") -> keras.Model:
    """32x32 RGB -> 2 classes. Layer "features" passes R, G, B through (1x1 identity conv, ReLU);
    class 0's score is the mean red of the top-left quadrant, class 1's the mean green of the
    bottom-right one. ``final``: softmax inside the Dense layer or as a separate Activation."""
    inputs = keras.Input((32, 32, 3))
    features = keras.layers.Conv2D(3, 1, use_bias=False, activation="relu", name="features")
    x = features(inputs)
    top_left = keras.layers.GlobalAveragePooling2D()(keras.layers.Cropping2D(((0, 16), (0, 16)))(x))
    bottom_right = keras.layers.GlobalAveragePooling2D()(keras.layers.Cropping2D(((16, 0), (16, 0)))(x))
    scores = keras.layers.Dense(2, activation="softmax" if final == "dense" else None, name="scores")
    outputs = scores(keras.layers.Concatenate()([top_left, bottom_right]))  # [R, G, B] top-left, then bottom-right
    if final == "activation":
        outputs = keras.layers.Activation("softmax")(outputs)
    features.set_weights([np.eye(3, dtype="float32").reshape(1, 1, 3, 3)])
    kernel = np.zeros((6, 2), "float32")
    kernel[0, 0] = kernel[4, 1] = 1.0  # class 0 <- red top-left; class 1 <- green bottom-right
    scores.set_weights([kernel, np.zeros(2, "float32")])
    return keras.Model(inputs, outputs)


def squares() -> np.ndarray:
    """Image 0: a red 8x8 square top-left and a green 6x6 one bottom-right; image 1: the green one only."""
    x = np.zeros((2, 32, 32, 3), "float32")
    x[0, 4:12, 4:12, 0] = 1.0
    x[:, 20:26, 20:26, 1] = 1.0
    return x


def size(path: Path) -> tuple[int, int]:
    """(width, height) of the image file at ``path``."""
    with Image.open(path) as image:
        return image.size


def share(heatmap: np.ndarray, rows: slice, cols: slice) -> float:
    return float(heatmap[rows, cols].sum() / heatmap.sum())


TL, BR = (slice(0, 16), slice(0, 16)), (slice(16, 32), slice(16, 32))


@pytest.mark.parametrize("final", ["dense", "activation"])
def test_heatmap_falls_where_the_class_score_comes_from(final):
    model = quadrant_model(final)
    gradcam = cam.GradCAM(model)
    assert gradcam.layer == "features"  # the crop layers are 4-D too, but each sees one branch only

    probs, maps = gradcam(squares(), cam.targets({"red": [0], "green": [1], "both": [0, 1]}))

    # Same float32 model through another graph (tf.function vs predict): summation order may differ, so
    # relative 1e-5 (float32 has ~7 digits; sums of a few hundred terms lose about two); decisions exactly.
    expected = model.predict(squares(), verbose=0)
    np.testing.assert_allclose(probs, expected, rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(probs.argmax(axis=-1), expected.argmax(axis=-1))
    for heatmap in maps.values():
        assert heatmap.shape == (2, 32, 32) and heatmap.dtype == np.float32
        assert np.isfinite(heatmap).all() and heatmap.min() >= 0 and heatmap.max() <= 1
    assert share(maps["red"][0], *TL) > 0.99 and maps["red"][0].max() == 1.0
    assert share(maps["green"][0], *BR) > 0.99 and share(maps["green"][1], *BR) > 0.99
    assert not maps["red"][1].any()  # no red in image 1: nothing counts for class 0
    assert 0.3 < share(maps["both"][0], *TL) < 0.7  # the group sees both squares
    # Top-1: class 0 for image 0 (the bigger square), class 1 for image 1.
    np.testing.assert_array_equal(maps["top1"][0], maps["red"][0])
    np.testing.assert_array_equal(maps["top1"][1], maps["green"][1])


def test_constant_images_give_finite_heatmaps():
    gradcam = cam.GradCAM(quadrant_model())
    for value in (0.0, 0.5):
        _, maps = gradcam(np.full((1, 32, 32, 3), value, "float32"), cam.targets([0, 1]))
        for heatmap in maps.values():
            assert np.isfinite(heatmap).all() and heatmap.min() >= 0 and heatmap.max() <= 1


def test_targets_resolve_groups_classes_and_mappings():
    assert cam.targets() == {"top1": None, "cat": CAT, "dog": DOG}
    assert cam.targets([207, "cat"]) == {"top1": None, "class207": (207,), "cat": CAT}
    assert cam.targets({"big cats": range(286, 294)}) == {"top1": None, "big cats": tuple(range(286, 294))}
    with pytest.raises(ValueError, match="Unknown class group 'horse'"):
        cam.targets(["horse"])
    with pytest.raises(ValueError, match="out of range"):
        cam.GradCAM(quadrant_model())(squares(), cam.targets([2]))


def test_a_layer_can_be_named_and_bad_models_are_refused():
    model = quadrant_model()
    assert cam.GradCAM(model, "features").layer == "features"
    with pytest.raises(ValueError, match="depends on more than layer 'cropping"):
        cam.GradCAM(model, next(layer.name for layer in model.layers if layer.name.startswith("cropping")))
    dense_only = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2, activation="softmax")])
    with pytest.raises(ValueError, match="no convolutional layer"):
        cam.GradCAM(dense_only)


# --- Overlays -----------------------------------------------------------------------------

def test_overlay_is_full_size_blended_and_leaves_the_photo_alone():
    rgb = np.random.default_rng(0).integers(0, 256, (37, 53, 3), np.uint8)
    before = rgb.copy()
    heatmap = np.zeros((4, 4), np.float32)

    blended = overlay.overlay(rgb, heatmap, alpha=0.25)

    assert blended.shape == rgb.shape and blended.dtype == np.uint8
    np.testing.assert_array_equal(rgb, before)
    cold = cv2.applyColorMap(np.zeros((1, 1), np.uint8), cv2.COLORMAP_JET)[0, 0, ::-1]  # RGB of heat 0
    np.testing.assert_allclose(blended, 0.75 * rgb + 0.25 * cold, atol=1)
    hot = overlay.overlay(np.zeros((8, 8, 3), np.uint8), np.ones((2, 2)), alpha=1.0)
    assert tuple(hot[0, 0]) == tuple(cv2.applyColorMap(np.full((1, 1), 255, np.uint8), cv2.COLORMAP_JET)[0, 0, ::-1])


def test_output_names_and_atomic_jpeg(tmp_path):
    stems = overlay.output_stems([Path("a/cat.png"), Path("a/cat.jpg"), Path("a/dog.jpg")])
    assert stems == ["cat_png", "cat_jpg", "dog"]
    assert overlay.output_name("dog", "top1") == "dog_cam.jpg"
    assert overlay.output_name("dog", "class207") == "dog_cam_class207.jpg"
    path = overlay.save_jpeg(tmp_path / "x_cam.jpg", np.zeros((5, 7, 3), np.uint8))
    assert size(path) == (7, 5)
    assert [p.name for p in tmp_path.iterdir()] == ["x_cam.jpg"]  # no temp file left behind


# --- The real thing: MobileNet 0.25 with ImageNet weights, on real photos, offline ----------

@pytest.fixture(scope="module")
def mobilenet(keras_home):
    return keras.applications.MobileNet(alpha=0.25, input_shape=(128, 128, 3), weights="imagenet")


@pytest.fixture(scope="module")
def explained(mobilenet, shared_images):
    photos, skipped = images.load_folder(shared_images)
    assert photos and not skipped
    x = keras.applications.mobilenet.preprocess_input(images.to_batch([p.rgb for p in photos], 128))
    gradcam = cam.GradCAM(mobilenet)
    probs, maps = cam.explain(gradcam, x, cam.targets(), batch_size=16)
    return photos, x, gradcam, probs, maps


def _cats(photos):
    cats = [i for i, p in enumerate(photos) if p.path.name.startswith("cat_")]
    assert len(cats) >= 3, "expected the shared cat photos"
    return cats


def test_cat_photos_are_called_cats(explained):
    photos, _, gradcam, probs, _ = explained
    assert gradcam.layer == "conv_pw_13_relu"  # found automatically: MobileNet's last conv block
    for i in _cats(photos):
        top3 = set(np.argsort(probs[i])[-3:])
        assert top3 & set(CAT), (photos[i].path.name, top3)


def test_cat_heatmaps_centre_on_the_cats(explained):
    # The shared cat photos are framed on the cat (see ../shared/images/README.md): the cat
    # heatmap, at the photo's size, must be hotter in the central half than around it.
    photos, _, _, _, maps = explained
    for i in _cats(photos):
        height, width = photos[i].rgb.shape[:2]
        full = cv2.resize(maps["cat"][i], (width, height), interpolation=cv2.INTER_LINEAR)
        centre = np.zeros((height, width), bool)
        centre[height // 4:3 * height // 4, width // 4:3 * width // 4] = True
        assert full[centre].mean() > full[~centre].mean() + 0.05, photos[i].path.name


def test_hiding_the_hot_region_removes_the_class(explained, mobilenet):
    # Faithfulness, whatever the framing: greying out the hottest quarter of a photo (for its
    # own class group) must lower that group's probability, and more than greying the coldest.
    photos, x, _, probs, maps = explained
    checks = [(i, "cat", CAT) for i in _cats(photos)]
    checks += [(i, "dog", DOG) for i, p in enumerate(photos)
               if p.path.name.startswith("dog") and probs[i][list(DOG)].sum() > 0.5]
    assert len(checks) >= 6
    for i, group, classes in checks:
        heat = cv2.resize(maps[group][i], (128, 128), interpolation=cv2.INTER_LINEAR)
        hidden = np.stack([x[i], x[i]])
        hidden[0][heat >= np.quantile(heat, 0.75)] = 0.0  # 0 is mid-grey after MobileNet's preprocessing
        hidden[1][heat <= np.quantile(heat, 0.25)] = 0.0
        hot, cold = mobilenet.predict(hidden, verbose=0)[:, list(classes)].sum(axis=-1)
        assert hot < cold and hot < probs[i][list(classes)].sum(), (photos[i].path.name, group, hot, cold)


def test_batched_equals_one_by_one(explained):
    # A batched matrix product sums in another order than a batch of one, so float32 results agree to
    # round-off only: seen up to 1.5e-6 on probabilities of ~0.4 (another CPU). Relative 1e-5 on
    # probabilities; 1e-4 absolute on heatmaps in [0, 1] (normalised by a maximum that carries the same
    # round-off, after a ReLU). The decisions (top-3 classes) must be identical.
    photos, x, gradcam, probs, maps = explained
    for i in range(len(photos)):
        one_probs, one_maps = cam.explain(gradcam, x[i:i + 1], cam.targets())
        np.testing.assert_allclose(one_probs[0], probs[i], rtol=1e-5, atol=1e-7, err_msg=photos[i].path.name)
        np.testing.assert_array_equal(np.argsort(one_probs[0])[-3:], np.argsort(probs[i])[-3:],
                                      err_msg=f"{photos[i].path.name}: top-3 classes differ")
        for target, heatmap in one_maps.items():
            np.testing.assert_allclose(heatmap[0], maps[target][i], atol=1e-4,
                                       err_msg=f"{photos[i].path.name} {target}")
    small_batches = cam.explain(gradcam, x, cam.targets(), batch_size=4)[1]
    for target in maps:
        np.testing.assert_allclose(small_batches[target], maps[target], atol=1e-4)


def test_real_model_heatmaps_of_a_constant_image_are_finite(mobilenet):
    _, maps = cam.GradCAM(mobilenet)(np.zeros((2, 128, 128, 3), "float32"), cam.targets())
    for heatmap in maps.values():
        assert heatmap.shape == (2, 4, 4) and np.isfinite(heatmap).all()
        assert heatmap.min() >= 0 and heatmap.max() <= 1


def test_bad_files_are_reported_and_the_others_get_full_size_overlays(tmp_path, mobilenet, shared_images, caplog):
    folder, out = tmp_path / "img_in", tmp_path / "img_out"
    folder.mkdir()
    photo = next(shared_images.glob("cat_openimages_*.jpg"))
    shutil.copy(photo, folder / "good.jpg")
    data = photo.read_bytes()
    (folder / "corrupt.jpg").write_bytes(data[: len(data) // 3])
    (folder / "letter.jpg").write_text("Dear student, this is not a JPEG.\n")
    (folder / "empty.jpg").write_bytes(b"")
    rgb = images.load_rgb(photo)
    Image.fromarray(rgb).convert("L").save(folder / "gray.png")
    Image.fromarray(rgb).convert("RGBA").save(folder / "alpha.png")

    photos, skipped = images.load_folder(folder)
    _, maps = cam.explain(cam.GradCAM(mobilenet),
                          keras.applications.mobilenet.preprocess_input(images.to_batch([p.rgb for p in photos], 128)),
                          cam.targets())
    files, _ = overlay.write_overlays(photos, maps, out)

    assert sorted(s.path.name for s in skipped) == ["corrupt.jpg", "empty.jpg", "letter.jpg"]
    assert all(any(s.path.name in r.getMessage() for r in caplog.records) for s in skipped)
    assert [p.path.name for p in photos] == ["alpha.png", "good.jpg", "gray.png"]
    expected = {f"{stem}{suffix}" for stem in ("alpha", "gray", "good")
                for suffix in ("_cam.jpg", "_cam_cat.jpg", "_cam_dog.jpg")}
    assert {p.name for p in out.iterdir()} == expected
    for written in files:
        for path in written.values():
            assert size(path) == size(photo)  # the original's full resolution


def test_missing_class_index_or_weights_name_the_file_offline(tmp_path):
    # A fresh interpreter: Keras reads KERAS_HOME when imported. The proxy on a closed local
    # port makes every download fail at once, network or not.
    code = ("import numpy as np\n"
            "from labutils import assets, backbones\n"
            "for call in (lambda: backbones.decode_predictions('vgg16')(np.full((1, 1000), 1e-3), top=3),\n"
            "             lambda: backbones.build('vgg16', include_top=True)):\n"
            "    try:\n"
            "        call()\n"
            "    except assets.AssetMissingError as err:\n"
            "        print(err)\n")
    env = {**os.environ, "KERAS_HOME": str(tmp_path), "HTTPS_PROXY": "http://127.0.0.1:9",
           "HTTP_PROXY": "http://127.0.0.1:9", "TF_CPP_MIN_LOG_LEVEL": "3",
           "LAB5_PROFILE": "full"}  # the smoke profile would use stand-ins instead
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300).stdout
    assert f"{tmp_path / 'models' / 'imagenet_class_index.json'}" in out
    assert f"{tmp_path / 'models' / 'vgg16_weights_tf_dim_ordering_tf_kernels.h5'}" in out


# --- Notebook 04, headless, smoke profile --------------------------------------------------

@pytest.mark.parametrize("samples, cache", [(True, True), (False, True), (True, False)],
                         ids=["samples", "empty-img_in", "no-keras-cache"])
def test_notebook_runs_under_papermill(tmp_path, monkeypatch, request, samples, cache):
    papermill = pytest.importorskip("papermill")
    if cache:
        request.getfixturevalue("keras_home")  # the shared cache, or skip
    root = tmp_path / "lab"
    (root / "img_in").mkdir(parents=True)
    if samples:
        for path in (REPO / "img_in").iterdir():
            shutil.copy(path, root / "img_in")
        (root / "img_in" / "broken.jpg").write_text("not a photo")
    monkeypatch.setenv("LAB5_ROOT", str(root))
    # A student's plain kernel: the profile comes from the notebook's parameter only, and the
    # notebook quiets TensorFlow's start-up lines itself.
    monkeypatch.delenv("LAB5_PROFILE", raising=False)
    monkeypatch.delenv("TF_CPP_MIN_LOG_LEVEL", raising=False)
    if not cache:  # an empty Keras cache, and downloads failing at once: random weights, class indices
        (tmp_path / "keras_home").mkdir()
        monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras_home"))
        monkeypatch.setenv("HTTPS_PROXY", "http://127.0.0.1:9")
        monkeypatch.setenv("HTTP_PROXY", "http://127.0.0.1:9")

    papermill.execute_notebook(str(REPO / "notebooks" / "04_vgg16_cam.ipynb"), str(tmp_path / "out.ipynb"),
                               parameters={"profile": "smoke"}, kernel_name="python3",
                               cwd=str(REPO / "notebooks"), progress_bar=False)
    shown = "".join(o.get("text", "") + o.get("data", {}).get("text/plain", "")
                    for c in nbformat.read(tmp_path / "out.ipynb", 4).cells if c.cell_type == "code"
                    for o in c.outputs)
    assert "profile: smoke (chosen explicitly)" in shown
    for line in ("absl::InitializeLog", "oneDNN custom operations", "cuInit", "cuda drivers", "cpu_feature_guard"):
        assert line not in shown, shown

    results = json.loads((root / "records" / "results" / "04_vgg16_cam.json").read_text())
    assert results["profile"] == "smoke" and results["backbone"] == config.profile("smoke").cam_backbone
    assert results["weights"] == ("imagenet" if cache else None)
    photos, _ = images.load_folder(root / "img_in")
    assert [row["image"] for row in results["images"]] == [p.path.name for p in photos]
    shipped = [p for p in (REPO / "img_in").iterdir() if p.name not in images.DOC_FILES]
    assert len(photos) == (len(shipped) if samples else 0)
    assert results["skipped"] == ([{"file": "broken.jpg", "reason": "not a JPEG, PNG, BMP, GIF or WebP image "
                                    "(or its header is damaged)"}] if samples else [])
    for photo, row in zip(photos, results["images"]):
        assert len(row["top3"]) == 3 and set(row["groups"]) == {"cat", "dog"}
        assert set(row["overlays"]) == {"top1", "cat", "dog"}
        for path in row["overlays"].values():
            assert size(root / path) == photo.rgb.shape[1::-1]
    if samples and cache:  # real weights from the shared Keras cache
        chelsea = next(row for row in results["images"] if row["image"] == "chelsea.png")
        assert chelsea["groups"]["cat"] > 0.5
        assert chelsea["top3"][0]["label"] in ("tabby", "tiger_cat", "Persian_cat", "Siamese_cat", "Egyptian_cat")
        by_name = {row["image"]: row for row in results["images"]}
        freya, artemis = by_name["freya_cat.jpg"], by_name["artemis_dog.jpg"]  # the lab's pair, shipped
        assert freya["groups"]["cat"] > freya["groups"]["dog"] and artemis["groups"]["dog"] > artemis["groups"]["cat"]
    if samples and not cache:
        assert all(t["label"].startswith("class ") for row in results["images"] for t in row["top3"])
