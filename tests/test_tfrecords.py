"""TFRecord shards on the real CIFAR-10 subset: round trip, manifest, atomic writes, corrupt shards."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

from labutils import cifar10, config, tfrecords


@pytest.fixture(scope="module")
def splits(cifar_subset_dir):
    return cifar10.prepare_splits(cifar10.load(cifar_subset_dir), config.profile("full"))


@pytest.fixture(scope="module")
def records(splits, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("records")
    tfrecords.write_splits(splits, out, progress=False)
    return out


def copy_records(records: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(records, tmp_path / "records"))


def test_every_image_comes_back_byte_identical(splits, records):
    for name, source in splits.items():
        back = tfrecords.read_split(name, records)
        order = np.argsort(back.indices)
        np.testing.assert_array_equal(back.indices[order], source.indices)
        assert back.images.dtype == np.uint8
        assert back.images[order].tobytes() == source.images.tobytes()
        np.testing.assert_array_equal(back.labels[order], source.labels)
        np.testing.assert_array_equal(back.class_ids[order], source.class_ids)


def test_manifest_counts_shards_and_hashes(splits, records):
    manifest = json.loads((records / "manifest.json").read_text())
    total_shards = sum(len(s["shards"]) for s in manifest["splits"].values())
    assert 10 <= total_shards <= 20
    assert tfrecords.shard_sizes_ok(manifest)
    for name, source in splits.items():
        entry = manifest["splits"][name]
        assert entry["examples"] == len(source.labels) == sum(s["examples"] for s in entry["shards"])
        assert entry["cats"] == int(source.labels.sum()) == sum(s["cats"] for s in entry["shards"])
        n = len(entry["shards"])
        assert [s["file"] for s in entry["shards"]] == [f"{name}-{i:05d}-of-{n:05d}.tfrecord" for i in range(n)]
        for shard in entry["shards"]:
            assert tfrecords.sha256(records / shard["file"]) == shard["sha256"]
    assert sorted(p.name for p in records.glob("*.tfrecord")) == sorted(
        s["file"] for e in manifest["splits"].values() for s in e["shards"])


def test_record_format_is_exactly_the_interface(records, splits):
    raw = next(iter(tf.data.TFRecordDataset(str(records / "test-00000-of-00004.tfrecord")))).numpy()
    features = tf.train.Example.FromString(raw).features.feature
    assert set(features) == {"image", "label", "class_id", "index"}
    assert len(features["image"].bytes_list.value[0]) == 3072
    index = features["index"].int64_list.value[0]
    assert features["image"].bytes_list.value[0] == splits["test"].images[index].tobytes()  # HWC, unscaled
    assert features["class_id"].int64_list.value[0] == splits["test"].class_ids[index]
    assert features["label"].int64_list.value[0] == int(splits["test"].class_ids[index] == 3)


@pytest.mark.parametrize("batch_size", [100, 64, 1000])
def test_evaluation_dataset_yields_every_test_image_once(records, splits, batch_size):
    n = len(splits["test"].labels)
    assert n % batch_size != 0 or batch_size > n
    seen = [i for _, _, idx in tfrecords.dataset("test", batch_size, with_index=True, records_dir=records)
            for i in idx.numpy()]
    assert len(seen) == n == tfrecords.num_examples("test", records)
    assert sorted(seen) == list(range(n))


def test_preprocessing_choices(records, splits):
    ds = lambda prep: tfrecords.dataset("val", 32, preprocess=prep, with_index=True, records_dir=records)
    raw_images, labels, index = next(iter(ds(None)))
    np.testing.assert_array_equal(raw_images.numpy(), splits["val"].images[np.searchsorted(splits["val"].indices, index)])
    assert raw_images.dtype == tf.uint8 and labels.dtype == tf.float32
    scaled = next(iter(ds("scale")))[0].numpy()
    np.testing.assert_allclose(scaled, raw_images.numpy() / 255.0, atol=1e-7)
    centered = next(iter(ds(lambda x: x - 128.0)))[0].numpy()
    np.testing.assert_allclose(centered, raw_images.numpy() - 128.0)
    with pytest.raises(ValueError, match="preprocess"):
        tfrecords.dataset("val", 32, preprocess="imagenet", records_dir=records)


def test_training_dataset_shuffles_and_repeats(records, splits):
    n_val = len(splits["val"].labels)
    train = tfrecords.dataset("val", 50, training=True, with_index=True, records_dir=records)
    seen = np.concatenate([idx.numpy() for _, _, idx in train.take(2 * n_val // 50 + 1)])
    assert len(seen) > n_val  # repeats past one epoch
    first_epoch = seen[:n_val]
    assert sorted(first_epoch) == sorted(splits["val"].indices)  # each image once per epoch
    ordered = np.concatenate([idx.numpy() for _, _, idx in
                              tfrecords.dataset("val", 50, with_index=True, records_dir=records)])
    assert not np.array_equal(first_epoch, ordered)


def test_rewrite_with_another_shard_count_removes_stale_shards(splits, records, tmp_path):
    out = tmp_path / "records"
    tfrecords.write_splits(splits, out, shards={"train": 3, "val": 1, "test": 2}, progress=False)
    assert (out / "train-00002-of-00003.tfrecord").exists()
    manifest = tfrecords.write_splits(splits, out, progress=False)
    names = sorted(p.name for p in out.iterdir())
    assert not any("-of-00003" in n for n in names)
    assert len([n for n in names if n.endswith(".tfrecord")]) == sum(config.SHARDS.values())
    assert manifest == json.loads((out / "manifest.json").read_text())
    assert manifest == tfrecords.read_manifest(records)  # same data, byte-identical shards
    assert not [n for n in names if n.endswith(".partial")]


def test_interrupted_write_leaves_previous_set_intact(splits, records, tmp_path, monkeypatch):
    out = copy_records(records, tmp_path)
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    real, calls = tfrecords.serialize, {"n": 0}

    def failing_serialize(*args):
        calls["n"] += 1
        if calls["n"] == 1500:  # mid-shard, in the middle of the train split
            raise KeyboardInterrupt("power cut")
        return real(*args)

    monkeypatch.setattr(tfrecords, "serialize", failing_serialize)
    with pytest.raises(KeyboardInterrupt):
        tfrecords.write_splits(splits, out, shards={"train": 5, "val": 1, "test": 4}, progress=False)
    after = {p.name: p.read_bytes() for p in out.iterdir()}
    assert after == before  # no new finished-looking shard, no partial file left, old set untouched
    back = tfrecords.read_split("test", out)
    assert len(back.labels) == len(splits["test"].labels)


@pytest.mark.parametrize("damage", ["truncate", "flip"])
def test_damaged_shard_raises_naming_the_file(records, tmp_path, damage):
    out = copy_records(records, tmp_path)
    shard = out / "test-00001-of-00004.tfrecord"
    data = bytearray(shard.read_bytes())
    if damage == "truncate":
        data = data[: len(data) - 700]
    else:
        data[5000] ^= 0xFF
    shard.write_bytes(bytes(data))
    with pytest.raises(tfrecords.RecordsError, match="test-00001-of-00004.tfrecord"):
        tfrecords.dataset("test", 64, records_dir=out)
    with pytest.raises(tfrecords.RecordsError, match="test-00001-of-00004.tfrecord"):
        tfrecords.read_split("test", out)


def test_damage_behind_the_manifest_is_still_named(records, tmp_path):
    """Even when the manifest's hash is updated to match (e.g. copied by hand), the read names the shard."""
    out = copy_records(records, tmp_path)
    shard = out / "val-00000-of-00002.tfrecord"
    shard.write_bytes(shard.read_bytes()[:-700])
    manifest = json.loads((out / "manifest.json").read_text())
    manifest["splits"]["val"]["shards"][0]["sha256"] = tfrecords.sha256(shard)
    (out / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(tfrecords.RecordsError, match="val-00000-of-00002.tfrecord"):
        tfrecords.read_split("val", out)


def test_missing_manifest_or_shard_says_how_to_fix(records, tmp_path):
    with pytest.raises(tfrecords.RecordsError, match="01_tfrecords"):
        tfrecords.dataset("test", 8, records_dir=tmp_path)
    out = copy_records(records, tmp_path)
    (out / "train-00003-of-00012.tfrecord").unlink()
    with pytest.raises(tfrecords.RecordsError, match="train-00003-of-00012.tfrecord.*missing"):
        tfrecords.dataset("train", 8, training=True, records_dir=out)
