"""TFRecord shards on the real CIFAR-10 subset: round trip, manifest, atomic writes, corrupt shards."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

from labutils import config, tfrecords


def copy_records(records: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(records, tmp_path / "records"))


def test_every_image_comes_back_byte_identical(full_splits, full_records):
    for name, source in full_splits.items():
        back = tfrecords.read_split(name, full_records)
        order = np.argsort(back.indices)
        np.testing.assert_array_equal(back.indices[order], source.indices)
        assert back.images.dtype == np.uint8
        assert back.images[order].tobytes() == source.images.tobytes()
        np.testing.assert_array_equal(back.labels[order], source.labels)
        np.testing.assert_array_equal(back.class_ids[order], source.class_ids)


def test_manifest_counts_shards_and_hashes(full_splits, full_records):
    manifest = json.loads((full_records / "manifest.json").read_text())
    total_shards = sum(len(s["shards"]) for s in manifest["splits"].values())
    assert 10 <= total_shards <= 20
    for name, source in full_splits.items():
        entry = manifest["splits"][name]
        assert entry["examples"] == len(source.labels) == sum(s["examples"] for s in entry["shards"])
        sizes = [s["examples"] for s in entry["shards"]]
        assert max(sizes) - min(sizes) <= 1  # balanced shards
        assert entry["cats"] == int(source.labels.sum()) == sum(s["cats"] for s in entry["shards"])
        n = len(entry["shards"])
        assert [s["file"] for s in entry["shards"]] == [f"{name}-{i:05d}-of-{n:05d}.tfrecord" for i in range(n)]
        for shard in entry["shards"]:
            assert tfrecords.sha256(full_records / shard["file"]) == shard["sha256"]
    assert sorted(p.name for p in full_records.glob("*.tfrecord")) == sorted(
        s["file"] for e in manifest["splits"].values() for s in e["shards"])


def test_record_format_is_exactly_the_interface(full_records, full_splits):
    raw = next(iter(tf.data.TFRecordDataset(str(full_records / "test-00000-of-00004.tfrecord")))).numpy()
    features = tf.train.Example.FromString(raw).features.feature
    assert set(features) == {"image", "label", "class_id", "index"}
    assert len(features["image"].bytes_list.value[0]) == 3072
    index = features["index"].int64_list.value[0]
    assert features["image"].bytes_list.value[0] == full_splits["test"].images[index].tobytes()  # HWC, unscaled
    assert features["class_id"].int64_list.value[0] == full_splits["test"].class_ids[index]
    assert features["label"].int64_list.value[0] == int(full_splits["test"].class_ids[index] == 3)


@pytest.mark.parametrize("batch_size", [100, 64, 1000])
def test_evaluation_dataset_yields_every_test_image_once(full_records, full_splits, batch_size):
    n = len(full_splits["test"].labels)
    assert n % batch_size != 0 or batch_size > n
    seen = [i for _, _, idx in tfrecords.dataset("test", batch_size, with_index=True, records_dir=full_records)
            for i in idx.numpy()]
    assert len(seen) == n == tfrecords.num_examples("test", full_records)
    assert sorted(seen) == list(range(n))


def test_preprocessing_choices(full_records, full_splits):
    ds = lambda prep: tfrecords.dataset("val", 32, preprocess=prep, with_index=True, records_dir=full_records)
    raw_images, labels, index = next(iter(ds(None)))
    np.testing.assert_array_equal(raw_images.numpy(), full_splits["val"].images[np.searchsorted(full_splits["val"].indices, index)])
    assert raw_images.dtype == tf.uint8 and labels.dtype == tf.float32
    scaled = next(iter(ds("scale")))[0].numpy()
    # float32 x / 255 in TensorFlow (which may multiply by the reciprocal instead) vs float64 in NumPy:
    # values in [0, 1] agree to one float32 step at 1.0.
    np.testing.assert_allclose(scaled, raw_images.numpy() / 255.0, rtol=0, atol=np.finfo(np.float32).eps)
    centered = next(iter(ds(lambda x: x - 128.0)))[0].numpy()
    np.testing.assert_allclose(centered, raw_images.numpy() - 128.0)
    with pytest.raises(ValueError, match="preprocess"):
        tfrecords.dataset("val", 32, preprocess="imagenet", records_dir=full_records)


def test_training_dataset_shuffles_and_repeats(full_records, full_splits):
    n_val = len(full_splits["val"].labels)
    train = tfrecords.dataset("val", 50, training=True, with_index=True, records_dir=full_records)
    seen = np.concatenate([idx.numpy() for _, _, idx in train.take(2 * n_val // 50 + 1)])
    assert len(seen) > n_val  # repeats past one epoch
    first_epoch = seen[:n_val]
    assert sorted(first_epoch) == sorted(full_splits["val"].indices)  # each image once per epoch
    ordered = np.concatenate([idx.numpy() for _, _, idx in
                              tfrecords.dataset("val", 50, with_index=True, records_dir=full_records)])
    assert not np.array_equal(first_epoch, ordered)


def test_rewrite_with_another_shard_count_removes_stale_shards(full_splits, full_records, tmp_path):
    out = tmp_path / "records"
    tfrecords.write_splits(full_splits, out, shards={"train": 3, "val": 1, "test": 2}, progress=False)
    assert (out / "train-00002-of-00003.tfrecord").exists()
    manifest = tfrecords.write_splits(full_splits, out, progress=False)
    names = sorted(p.name for p in out.iterdir())
    assert not any("-of-00003" in n for n in names)
    assert len([n for n in names if n.endswith(".tfrecord")]) == sum(config.SHARDS.values())
    assert manifest == json.loads((out / "manifest.json").read_text())
    assert manifest == tfrecords.read_manifest(full_records)  # same data, byte-identical shards
    assert not [n for n in names if n.endswith(".partial")]


def test_interrupted_write_leaves_previous_set_intact(full_splits, full_records, tmp_path, monkeypatch):
    out = copy_records(full_records, tmp_path)
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    real, calls = tfrecords.serialize, {"n": 0}

    def failing_serialize(*args):
        calls["n"] += 1
        if calls["n"] == 1500:  # mid-shard, in the middle of the train split
            raise KeyboardInterrupt("power cut")
        return real(*args)

    monkeypatch.setattr(tfrecords, "serialize", failing_serialize)
    with pytest.raises(KeyboardInterrupt):
        tfrecords.write_splits(full_splits, out, shards={"train": 5, "val": 1, "test": 4}, progress=False)
    after = {p.name: p.read_bytes() for p in out.iterdir()}
    assert after == before  # no new finished-looking shard, no partial file left, old set untouched
    back = tfrecords.read_split("test", out)
    assert len(back.labels) == len(full_splits["test"].labels)


@pytest.mark.parametrize("damage", ["truncate", "flip"])
def test_damaged_shard_raises_naming_the_file(full_records, tmp_path, damage):
    out = copy_records(full_records, tmp_path)
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


def test_damage_behind_the_manifest_is_still_named(full_records, tmp_path):
    """Even when the manifest's hash is updated to match (e.g. copied by hand), the read names the shard."""
    out = copy_records(full_records, tmp_path)
    shard = out / "val-00000-of-00002.tfrecord"
    shard.write_bytes(shard.read_bytes()[:-700])
    manifest = json.loads((out / "manifest.json").read_text())
    manifest["splits"]["val"]["shards"][0]["sha256"] = tfrecords.sha256(shard)
    (out / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(tfrecords.RecordsError, match="val-00000-of-00002.tfrecord"):
        tfrecords.read_split("val", out)


def test_missing_manifest_or_shard_says_how_to_fix(full_records, tmp_path):
    with pytest.raises(tfrecords.RecordsError, match="01_tfrecords"):
        tfrecords.dataset("test", 8, records_dir=tmp_path)
    out = copy_records(full_records, tmp_path)
    (out / "train-00003-of-00012.tfrecord").unlink()
    with pytest.raises(tfrecords.RecordsError, match="train-00003-of-00012.tfrecord.*missing"):
        tfrecords.dataset("train", 8, training=True, records_dir=out)


@pytest.mark.parametrize("content, message", [
    (b"{}", "lists no splits"),
    (b"\xff\xfe not utf-8", "not valid UTF-8 JSON"),
    (json.dumps({"splits": {"test": {"examples": 1, "shards": [
        {"file": "../../etc/passwd", "examples": 1, "sha256": "0" * 64}]}}}).encode(), "not a test-NNNNN-of-NNNNN"),
    (json.dumps({"splits": {"test": {"examples": 5, "shards": []}}}).encode(), "do not add up to 5"),
])
def test_a_damaged_manifest_is_refused_naming_the_file_and_the_fix(tmp_path, content, message):
    (tmp_path / tfrecords.MANIFEST).write_bytes(content)
    with pytest.raises(tfrecords.RecordsError, match=message) as caught:
        tfrecords.shard_files("test", tmp_path)
    assert str(tmp_path / tfrecords.MANIFEST) in str(caught.value) and "notebooks/01_tfrecords.ipynb" in str(caught.value)


def test_partial_files_of_a_killed_run_are_cleaned_by_the_next(smoke_splits, tmp_path):
    (tmp_path / ".train-00000-of-00012.tfrecord.partial").write_bytes(b"half a shard")
    tfrecords.write_splits({"test": smoke_splits["test"]}, tmp_path, progress=False)
    assert not list(tmp_path.glob(".*.partial"))
