"""The lab's TFRecord shards: writing them atomically, and the ``tf.data`` pipelines that read them.

The record format is an interface shared by every notebook. Each shard
``records/{split}-{i:05d}-of-{n:05d}.tfrecord`` holds one ``tf.train.Example``
per image with:

* ``image``: bytes, the raw uint8 32x32x3 HWC image, unscaled (3,072 bytes);
* ``label``: int64, 1 = cat, 0 = not cat;
* ``class_id``: int64, the CIFAR-10 class 0-9;
* ``index``: int64, the image's position in its official source set.

``records/manifest.json`` lists, per split, each shard's file name, example
count, cat count and SHA-256; readers check the shards against it.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
from pathlib import Path
from typing import TYPE_CHECKING, Callable

import numpy as np
import tensorflow as tf

from labutils import atomic, config, course
from labutils.cifar10 import Split

if TYPE_CHECKING:
    import pandas

MANIFEST = "manifest.json"
FEATURES = {
    "image": tf.io.FixedLenFeature([], tf.string),
    "label": tf.io.FixedLenFeature([], tf.int64),
    "class_id": tf.io.FixedLenFeature([], tf.int64),
    "index": tf.io.FixedLenFeature([], tf.int64),
}
AUTOTUNE = tf.data.AUTOTUNE


class RecordsError(RuntimeError):
    """Shards missing, corrupt, or not matching ``manifest.json``."""


REWRITE_HINT = f"Fix: run notebooks/{course.TFRECORDS_NB.name} again to rewrite the records."


def shard_name(split: str, i: int, n: int) -> str:
    """``{split}-{i:05d}-of-{n:05d}.tfrecord``."""
    return f"{split}-{i:05d}-of-{n:05d}.tfrecord"


def serialize(image: np.ndarray, label: int, class_id: int, index: int) -> bytes:
    """One serialized ``tf.train.Example``; ``image`` uint8 ``(32, 32, 3)``."""
    if image.dtype != np.uint8 or image.shape != config.IMAGE_SHAPE:
        raise ValueError(f"expected a uint8 {config.IMAGE_SHAPE} image, got {image.dtype} {image.shape}")
    feature = {
        "image": tf.train.Feature(bytes_list=tf.train.BytesList(value=[image.tobytes()])),
        "label": tf.train.Feature(int64_list=tf.train.Int64List(value=[int(label)])),
        "class_id": tf.train.Feature(int64_list=tf.train.Int64List(value=[int(class_id)])),
        "index": tf.train.Feature(int64_list=tf.train.Int64List(value=[int(index)])),
    }
    # deterministic: map fields in a fixed order, so the same data gives byte-identical shards
    return tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString(deterministic=True)


def sha256(path: Path) -> str:
    """Hex SHA-256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def write_splits(splits: dict[str, Split], records_dir: Path = config.RECORDS_DIR,
                 shards: dict[str, int] = config.SHARDS, progress: bool = True) -> dict:
    """Write every split as balanced shards and return the manifest (also saved as ``manifest.json``).

    Shards are first written under hidden ``.partial`` names; a kill while writing them leaves
    the previous shards and manifest as they were (the ``.partial`` files are removed by the next
    run). Once every shard of every split is complete, they are renamed over the old ones one by
    one, stale shards (say, from another shard count) are removed, and the manifest is replaced
    last (atomically). A kill during those renames (a fraction of a second) leaves new shards
    beside the old manifest: readers then refuse them by their SHA-256, naming the shard, and
    running notebook 01 again repairs it. Writing the same data again gives byte-identical shards.
    """
    from tqdm.auto import tqdm

    records_dir = Path(records_dir)
    records_dir.mkdir(parents=True, exist_ok=True)
    for leftover in records_dir.glob(".*.tfrecord.partial"):  # from a run that was killed
        leftover.unlink()
    manifest, staged = {"format": {k: v.dtype.name for k, v in FEATURES.items()}, "splits": {}}, []
    bar = tqdm(total=sum(len(s.labels) for s in splits.values()), unit="img", desc="Writing TFRecords",
               disable=not progress)
    try:
        for split, data in splits.items():
            n = shards[split]
            entries = []
            for i, part in enumerate(np.array_split(np.arange(len(data.labels)), n)):
                final = records_dir / shard_name(split, i, n)
                tmp = records_dir / f".{final.name}.partial"
                staged.append((tmp, final))
                with tf.io.TFRecordWriter(str(tmp)) as writer:
                    for j in part:
                        writer.write(serialize(data.images[j], data.labels[j], data.class_ids[j], data.indices[j]))
                        bar.update(1)
                entries.append({"file": final.name, "examples": len(part),
                                "cats": int(data.labels[part].sum()), "sha256": sha256(tmp)})
            manifest["splits"][split] = {"examples": len(data.labels), "cats": int(data.labels.sum()),
                                         "shards": entries}
    except BaseException:
        for tmp, _ in staged:
            tmp.unlink(missing_ok=True)
        raise
    finally:
        bar.close()
    for tmp, final in staged:
        os.replace(tmp, final)
    keep = {final.name for _, final in staged}
    for split in splits:
        for old in records_dir.glob(f"{split}-*-of-*.tfrecord"):
            if old.name not in keep:
                old.unlink()
    previous = read_manifest(records_dir)["splits"] if (records_dir / MANIFEST).exists() else {}
    manifest["splits"] = {**{k: v for k, v in previous.items() if k not in splits}, **manifest["splits"]}
    atomic.write_text(records_dir / MANIFEST, json.dumps(manifest, indent=2) + "\n")
    return manifest


SHARD_FILE = re.compile(r"^(?P<split>[a-z]+)-\d{5}-of-\d{5}\.tfrecord$")


def read_manifest(records_dir: Path = config.RECORDS_DIR) -> dict:
    """The manifest written by :func:`write_splits`, checked: every split lists its example count and
    shards, each shard a plain file name of this folder with its count and SHA-256."""
    path = Path(records_dir) / MANIFEST
    if not path.is_file():
        raise RecordsError(f"No TFRecords manifest at {path}. {REWRITE_HINT}")
    try:
        manifest = json.loads(path.read_bytes().decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise RecordsError(f"{path} is not valid UTF-8 JSON ({err}). {REWRITE_HINT}") from err
    problem = _manifest_problem(manifest)
    if problem:
        raise RecordsError(f"{path} is damaged: {problem}. {REWRITE_HINT}")
    return manifest


def _manifest_problem(manifest) -> str | None:
    """What is wrong with a parsed manifest (None: nothing)."""
    splits = manifest.get("splits") if isinstance(manifest, dict) else None
    if not isinstance(splits, dict) or not splits:
        return "it lists no splits"
    for split, entry in splits.items():
        if not isinstance(entry, dict) or not isinstance(entry.get("examples"), int) \
                or not isinstance(entry.get("shards"), list):
            return f"split {split!r} has no example count or shard list"
        for shard in entry["shards"]:
            name = shard.get("file") if isinstance(shard, dict) else None
            match = SHARD_FILE.match(name) if isinstance(name, str) else None
            if not match or match.group("split") != split:
                return f"split {split!r} lists {name!r}, not a {split}-NNNNN-of-NNNNN.tfrecord file of this folder"
            if not isinstance(shard.get("examples"), int) or not isinstance(shard.get("sha256"), str):
                return f"shard {name} has no example count or SHA-256"
        if sum(s["examples"] for s in entry["shards"]) != entry["examples"]:
            return f"split {split!r}: its shards' counts do not add up to {entry['examples']}"
    return None


def num_examples(split: str, records_dir: Path = config.RECORDS_DIR) -> int:
    """How many examples the manifest lists for ``split``."""
    return _split_entry(split, records_dir)["examples"]


def _split_entry(split: str, records_dir: Path) -> dict:
    splits = read_manifest(records_dir)["splits"]
    if split not in splits:
        raise RecordsError(f"{Path(records_dir) / MANIFEST} has no split {split!r} (it has {sorted(splits)}). "
                           f"{REWRITE_HINT}")
    return splits[split]


def shard_files(split: str, records_dir: Path = config.RECORDS_DIR, verify: bool = True) -> list[Path]:
    """The shard paths of ``split``, each checked to exist and (``verify``) to match its manifest SHA-256."""
    records_dir = Path(records_dir)
    files = []
    for entry in _split_entry(split, records_dir)["shards"]:
        path = records_dir / entry["file"]
        if not path.is_file():
            raise RecordsError(f"Shard {path} listed in {MANIFEST} is missing. {REWRITE_HINT}")
        if verify and sha256(path) != entry["sha256"]:
            raise RecordsError(f"Shard {path} is corrupt or truncated: its SHA-256 does not match "
                               f"{MANIFEST}. {REWRITE_HINT}")
        files.append(path)
    return files


def _parser(preprocess: str | Callable | None, with_index: bool) -> Callable:
    # Parse only what is returned: each extra feature costs time on every record.
    wanted = {k: FEATURES[k] for k in ("image", "label", "index")[: 3 if with_index else 2]}

    def parse(serialized: tf.Tensor):
        features = tf.io.parse_example(serialized, wanted)
        images = tf.reshape(tf.io.decode_raw(features["image"], tf.uint8), (-1, *config.IMAGE_SHAPE))
        if preprocess == "scale":
            images = tf.cast(images, tf.float32) / 255.0
        elif callable(preprocess):
            images = preprocess(tf.cast(images, tf.float32))
        labels = tf.cast(features["label"], tf.float32)
        return (images, labels, features["index"]) if with_index else (images, labels)

    if preprocess not in ("scale", None) and not callable(preprocess):
        raise ValueError(f"preprocess must be 'scale', None or a function, not {preprocess!r}")
    return parse


def records(split: str, records_dir: Path = config.RECORDS_DIR, *, shuffle_shards: bool = False,
            seed: int = config.SEED) -> tf.data.Dataset:
    """The serialized ``tf.train.Example`` strings of ``split``, every shard interleaved, each example once.

    The order is fixed (deterministic interleave); ``shuffle_shards`` shuffles the order of the
    shards first (seeded), as training does. Shards are checked against the manifest first.
    """
    files = [str(f) for f in shard_files(split, records_dir)]
    ds = tf.data.Dataset.from_tensor_slices(files)
    if shuffle_shards:
        ds = ds.shuffle(len(files), seed=seed)
    # Deterministic order even when training: with the seeds above, two runs see the same
    # batches, so results from the records are as reproducible as results from arrays.
    return ds.interleave(tf.data.TFRecordDataset, cycle_length=len(files), num_parallel_calls=AUTOTUNE,
                         deterministic=True)


def parse_batch(serialized: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
    """A batch of serialized examples -> raw images uint8 ``(B, 32, 32, 3)`` and labels float32 ``(B,)``."""
    return _parser(None, with_index=False)(serialized)


def dataset(split: str, batch_size: int, *, training: bool = False, preprocess: str | Callable | None = "scale",
            with_index: bool = False, records_dir: Path = config.RECORDS_DIR, seed: int = config.SEED,
            shuffle_buffer: int = 10_000) -> tf.data.Dataset:
    """Batches of ``(images, labels)`` (or ``(images, labels, indices)``) read from ``split``'s shards.

    images: float32 ``(B, 32, 32, 3)`` in [0, 1] for ``preprocess="scale"``; uint8
    0-255 for ``None``; ``preprocess(float32 0-255 images)`` for a function (e.g. a
    backbone's ``preprocess_input``). labels: float32 ``(B,)``, 1.0 = cat.
    indices: int64 ``(B,)``.

    ``training=True``: shards and examples shuffled (seeded), repeated forever:
    pass ``steps_per_epoch``. ``training=False``: every example exactly once, in a
    fixed order, the last partial batch kept.
    """
    ds = records(split, records_dir, shuffle_shards=training, seed=seed)
    if training:
        ds = ds.shuffle(shuffle_buffer, seed=seed).repeat()
    # Batch first, then parse the whole batch at once: one vectorized parse_example
    # call per batch instead of one parse_single_example call per image.
    return ds.batch(batch_size).map(_parser(preprocess, with_index), num_parallel_calls=AUTOTUNE).prefetch(AUTOTUNE)


def read_split(split: str, records_dir: Path = config.RECORDS_DIR) -> Split:
    """Every example of ``split`` back as numpy arrays, shard by shard (for verifying a round trip).

    Checks each shard's example count against the manifest; a read error names the shard.
    """
    entries = _split_entry(split, records_dir)["shards"]
    parts = []
    for path, entry in zip(shard_files(split, records_dir), entries):
        try:
            records = list(tf.data.TFRecordDataset(str(path)).batch(4096).map(lambda s: tf.io.parse_example(s, FEATURES)))
        except (tf.errors.DataLossError, tf.errors.InvalidArgumentError) as err:
            raise RecordsError(f"Shard {path} cannot be read ({err.message.splitlines()[0]}). {REWRITE_HINT}") from err
        count = sum(len(r["label"]) for r in records)
        if count != entry["examples"]:
            raise RecordsError(f"Shard {path} holds {count} examples, {MANIFEST} says {entry['examples']}. "
                               f"{REWRITE_HINT}")
        parts.extend(records)
    column = lambda key: np.concatenate([r[key].numpy() for r in parts]) if parts else np.zeros(0, np.int64)
    raw = b"".join(b for r in parts for b in r["image"].numpy())
    images = np.frombuffer(raw, np.uint8).reshape(-1, *config.IMAGE_SHAPE)
    return Split(images, column("label"), column("class_id"), column("index"))


def manifest_table(manifest: dict) -> pandas.DataFrame:
    """One row per shard of ``manifest``: its split, file name, examples, cats, and the first 12 hex
    digits of its SHA-256."""
    import pandas as pd

    rows = [{"split": split, "file": s["file"], "examples": s["examples"], "cats": s["cats"],
             "sha256": s["sha256"][:12]} for split, entry in manifest["splits"].items() for s in entry["shards"]]
    return pd.DataFrame(rows)


def verify(splits: dict[str, Split], records_dir: Path = config.RECORDS_DIR) -> pandas.DataFrame:
    """Read every split back and compare with its source, image by image.

    One row per split: examples in the source, the records and the manifest,
    images whose bytes, label, class and index all match, and ``ok``.
    """
    import pandas as pd

    rows = {}
    for name, source in splits.items():
        back, n_manifest = read_split(name, records_dir), num_examples(name, records_dir)
        b, s = np.argsort(back.indices), np.argsort(source.indices)
        identical = 0
        if len(b) == len(s) and np.array_equal(back.indices[b], source.indices[s]):
            same = ((back.images[b] == source.images[s]).all(axis=(1, 2, 3))
                    & (back.labels[b] == source.labels[s]) & (back.class_ids[b] == source.class_ids[s]))
            identical = int(same.sum())
        rows[name] = {"source": len(s), "records": len(b), "manifest": n_manifest, "identical": identical,
                      "ok": identical == len(s) == len(b) == n_manifest}
    return pd.DataFrame.from_dict(rows, orient="index")


