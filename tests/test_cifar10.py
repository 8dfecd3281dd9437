"""Loading CIFAR-10 from the official format: real subset, every source kind, and bad input."""
from __future__ import annotations

import io
import os
import pickle
import tarfile
from pathlib import Path

import numpy as np
import pytest

from labutils import assets, cifar10, config


def write_official_batches(folder: Path, per_batch: int, seed: int = 0) -> Path:
    """A tiny ``cifar-10-batches-py/`` in the official pickle format; returns the folder."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    for name in (*cifar10.TRAIN_BATCHES, cifar10.TEST_BATCH):
        batch = {b"batch_label": name.encode(), b"labels": rng.integers(0, 10, per_batch).tolist(),
                 b"data": rng.integers(0, 256, (per_batch, 3072), dtype=np.uint8)}
        (folder / name).write_bytes(pickle.dumps(batch, protocol=2))
    (folder / "batches.meta").write_bytes(pickle.dumps({b"label_names": [n.encode() for n in config.CLASS_NAMES]}))
    return folder


def pack(folder: Path, archive: Path) -> Path:
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(folder, arcname="cifar-10-batches-py")
    return archive


def test_real_subset_from_folder_archive_and_file_url_is_identical(cifar_subset_dir, cifar_subset_archive, keras_home):
    from_folder = cifar10.load(cifar_subset_dir)
    from_archive = cifar10.load(cifar_subset_archive)
    from_url = cifar10.load(cifar_subset_archive.resolve().as_uri())

    assert from_folder.x_train.shape == (4660, 32, 32, 3) and from_folder.x_train.dtype == np.uint8
    assert from_folder.x_test.shape == (846, 32, 32, 3)
    assert int((from_folder.y_train == config.CAT_CLASS).sum()) == 448  # per shared/datasets/README.md
    assert int((from_folder.y_test == config.CAT_CLASS).sum()) == 84
    for other in (from_archive, from_url):
        for field in ("x_train", "y_train", "x_test", "y_test"):
            np.testing.assert_array_equal(getattr(other, field), getattr(from_folder, field))
    # The URL went through Keras' cache, as a real download would.
    assert (keras_home / "datasets" / cifar_subset_archive.name).is_file()


def test_rows_are_channel_major(tmp_path):
    folder = write_official_batches(tmp_path / "cifar-10-batches-py", per_batch=3)
    raw = pickle.loads((folder / "data_batch_2").read_bytes(), encoding="bytes")
    data = cifar10.load(folder)
    row = raw[b"data"][1]
    pixel = data.x_train[3 + 1, 0, 1]  # batch 2, image 1, row 0, column 1
    assert pixel.tolist() == [row[1], row[1024 + 1], row[2048 + 1]]
    assert data.y_train[4] == raw[b"labels"][1]


def test_parent_folder_of_batches_is_accepted(tmp_path):
    write_official_batches(tmp_path / "cifar-10-batches-py", per_batch=2)
    assert cifar10.load(tmp_path).x_train.shape == (10, 32, 32, 3)


def test_missing_path_names_the_variable(tmp_path):
    with pytest.raises(FileNotFoundError, match="LAB5_CIFAR10"):
        cifar10.load(tmp_path / "nowhere.tar.gz")


@pytest.mark.parametrize("content", [b"", b"not a tar archive at all", b"\x1f\x8b\x08\x00garbage"])
def test_malformed_archive_is_rejected_naming_the_file(tmp_path, content):
    bad = tmp_path / "cifar-10-python.tar.gz"
    bad.write_bytes(content)
    with pytest.raises(ValueError, match="cifar-10-python.tar.gz"):
        cifar10.load(bad)


def test_truncated_archive_is_rejected(tmp_path):
    archive = pack(write_official_batches(tmp_path / "src", per_batch=50), tmp_path / "a.tar.gz")
    archive.write_bytes(archive.read_bytes()[: archive.stat().st_size // 2])
    with pytest.raises(ValueError, match="a.tar.gz"):
        cifar10.load(archive)


def test_archive_without_the_official_layout_is_rejected(tmp_path):
    archive = tmp_path / "other.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        info = tarfile.TarInfo("photos/readme.txt")
        info.size = 5
        tar.addfile(info, io.BytesIO(b"hello"))
    with pytest.raises(ValueError, match="not laid out like"):
        cifar10.load(archive)


def test_batch_with_foreign_objects_is_refused(tmp_path):
    folder = write_official_batches(tmp_path / "cifar-10-batches-py", per_batch=2)
    (folder / "test_batch").write_bytes(pickle.dumps({b"data": os.getcwd, b"labels": []}))
    with pytest.raises(ValueError, match="test_batch"):
        cifar10.load(folder)


def test_wrong_row_length_is_rejected(tmp_path):
    folder = write_official_batches(tmp_path / "cifar-10-batches-py", per_batch=2)
    (folder / "data_batch_1").write_bytes(pickle.dumps({b"data": np.zeros((2, 100), np.uint8), b"labels": [0, 1]}))
    with pytest.raises(ValueError, match=r"data_batch_1.*\(N, 3072\)"):
        cifar10.load(folder)


def test_offline_download_fails_fast_with_the_fix(keras_home):
    with pytest.raises(assets.AssetMissingError) as err:
        cifar10.load("https://cifar.invalid/cifar-10-python.tar.gz")
    message = str(err.value)
    assert "LAB5_CIFAR10" in message and "KERAS_HOME" in message and "cifar-10-python.tar.gz" in message


def test_labels_are_cat_versus_not_cat():
    np.testing.assert_array_equal(cifar10.cat_labels(np.arange(10)), [0, 0, 0, 1, 0, 0, 0, 0, 0, 0])


def test_stratified_split_keeps_the_cat_ratio(cifar_subset_dir):
    data = cifar10.load(cifar_subset_dir)
    splits = cifar10.prepare_splits(data, config.profile("full"))
    train, val, test = splits["train"], splits["val"], splits["test"]

    assert abs(train.labels.mean() - val.labels.mean()) < 0.01
    assert len(val.labels) == pytest.approx(0.1 * len(data.y_train), abs=10)
    assert not set(train.indices) & set(val.indices)
    assert sorted([*train.indices, *val.indices]) == list(range(len(data.y_train)))
    np.testing.assert_array_equal(test.indices, np.arange(len(data.y_test)))  # the official test batch, whole
    np.testing.assert_array_equal(val.images, data.x_train[val.indices])
    np.testing.assert_array_equal(val.class_ids, data.y_train[val.indices])
    # Seeded: the same split every time.
    again = cifar10.prepare_splits(data, config.profile("full"))
    np.testing.assert_array_equal(again["val"].indices, val.indices)


def test_smoke_profile_keeps_a_few_hundred_images(cifar_subset_dir):
    smoke = config.profile("smoke")
    splits = cifar10.prepare_splits(cifar10.load(cifar_subset_dir), smoke)
    assert len(splits["train"].labels) + len(splits["val"].labels) == smoke.train_images
    assert len(splits["test"].labels) == smoke.test_images
