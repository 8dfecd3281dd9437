"""CIFAR-10 from the official python-version files, and the lab's cat / not-cat splits.

Sources (``load(source)``; default ``$LAB5_CIFAR10``, else Keras' cache):

* the official ``cifar-10-python.tar.gz`` or any archive laid out like it
  (read in place, nothing is extracted);
* an extracted ``cifar-10-batches-py/`` folder (or the folder holding it);
* a URL, ``file://`` included, downloaded once into ``$KERAS_HOME/datasets``
  by ``keras.utils.get_file`` (the official URL's SHA-256 is verified).

Images stay uint8 ``(N, 32, 32, 3)`` HWC, never scaled here.
"""
from __future__ import annotations

import dataclasses
import io
import pickle
import tarfile
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

import numpy as np

from labutils import assets, config

if TYPE_CHECKING:
    import pandas

TRAIN_BATCHES = tuple(f"data_batch_{i}" for i in range(1, 6))
TEST_BATCH = "test_batch"


@dataclasses.dataclass(frozen=True)
class Cifar10:
    """The official train and test sets: images uint8 ``(N, 32, 32, 3)``, class ids int64 ``(N,)`` in 0-9."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    source: str


class Split(NamedTuple):
    """One split as written to TFRecords: uint8 images ``(N, 32, 32, 3)`` and int64 ``(N,)`` columns.

    ``labels``: 1 = cat, 0 = not cat. ``class_ids``: the CIFAR-10 class 0-9.
    ``indices``: each image's position in its official source set (train or test).
    """

    images: np.ndarray
    labels: np.ndarray
    class_ids: np.ndarray
    indices: np.ndarray


class _BatchUnpickler(pickle.Unpickler):
    """Unpickles CIFAR batches only: numpy arrays and plain containers, no other code."""

    ALLOWED = {("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
               ("numpy", "ndarray"), ("numpy", "dtype"),
               ("_codecs", "encode")}  # how Python 3 writes bytes in protocol-2 pickles

    def find_class(self, module: str, name: str):
        if (module, name) not in self.ALLOWED:
            raise pickle.UnpicklingError(f"unexpected object {module}.{name} in a CIFAR-10 batch")
        return super().find_class(module, name)


def _parse_batch(raw: bytes, where: str) -> tuple[np.ndarray, np.ndarray]:
    """Images uint8 ``(N, 32, 32, 3)`` and class ids int64 ``(N,)`` of one pickled batch."""
    try:
        batch = _BatchUnpickler(io.BytesIO(raw), encoding="bytes").load()
        data = np.asarray(batch[b"data"], dtype=np.uint8)
        labels = np.asarray(batch[b"labels"], dtype=np.int64)
    except Exception as err:
        raise ValueError(f"{where} is not a CIFAR-10 python-version batch ({err}). Fix: point LAB5_CIFAR10 "
                         f"at the official cifar-10-python.tar.gz or its extracted cifar-10-batches-py/.") from err
    if data.ndim != 2 or data.shape[1] != 3072 or len(labels) != len(data) or not np.all((labels >= 0) & (labels < 10)):
        raise ValueError(f"{where}: expected `data` of shape (N, 3072) and N labels in 0-9, got data "
                         f"{data.shape} and {len(labels)} labels.")
    # Each row is 1024 red, then 1024 green, then 1024 blue values (channel-major).
    return data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1).copy(), labels


def _read_folder(folder: Path) -> dict[str, bytes]:
    if not (folder / "data_batch_1").exists() and (folder / "cifar-10-batches-py").is_dir():
        folder = folder / "cifar-10-batches-py"
    missing = [name for name in (*TRAIN_BATCHES, TEST_BATCH) if not (folder / name).is_file()]
    if missing:
        raise FileNotFoundError(f"{folder} lacks {', '.join(missing)}: LAB5_CIFAR10 must name the official "
                                f"cifar-10-python.tar.gz or its extracted cifar-10-batches-py/ folder.")
    return {name: (folder / name).read_bytes() for name in (*TRAIN_BATCHES, TEST_BATCH)}


def _read_archive(archive: Path) -> dict[str, bytes]:
    try:
        with tarfile.open(archive) as tar:
            members = {Path(m.name).name: m for m in tar.getmembers()
                       if m.isfile() and Path(m.name).parent.name == "cifar-10-batches-py"}
            missing = [name for name in (*TRAIN_BATCHES, TEST_BATCH) if name not in members]
            if missing:
                raise ValueError(f"{archive} has no cifar-10-batches-py/{missing[0]}: it is not laid out like "
                                 f"the official cifar-10-python.tar.gz.")
            return {name: tar.extractfile(members[name]).read() for name in (*TRAIN_BATCHES, TEST_BATCH)}
    except (tarfile.TarError, EOFError, OSError) as err:
        raise ValueError(f"{archive} is not a readable .tar.gz archive ({err}). Fix: download the official "
                         f"cifar-10-python.tar.gz again, or point LAB5_CIFAR10 at a good copy.") from err


def _download(url: str) -> Path:
    """The archive at ``url``, cached in ``$KERAS_HOME/datasets`` (official URL: hash verified)."""
    import keras  # imported here: reading local files should not pay for TensorFlow

    filename = url.rstrip("/").rsplit("/", 1)[-1]
    try:
        with assets.explain_missing(subdir="datasets"):
            return Path(keras.utils.get_file(fname=filename, origin=url, cache_subdir="datasets",
                                             file_hash=config.CIFAR10_SHA256 if url == config.CIFAR10_URL else None))
    except assets.AssetMissingError as err:
        raise assets.AssetMissingError(f"{err}\n  Or set LAB5_CIFAR10 to a local cifar-10-python.tar.gz "
                                       f"or cifar-10-batches-py/ folder.") from None


def load(source: str | Path | None = None) -> Cifar10:
    """CIFAR-10 from ``source`` (see the module docstring); nothing is scaled."""
    source = source or config.CIFAR10_SOURCE or config.CIFAR10_URL
    text = str(source)
    path = _download(text) if "://" in text else Path(text).expanduser()
    if not path.exists():
        raise FileNotFoundError(f"CIFAR-10 source {path} does not exist. Fix: set LAB5_CIFAR10 to the official "
                                f"cifar-10-python.tar.gz, its extracted cifar-10-batches-py/ folder, or a URL.")
    raw = _read_folder(path) if path.is_dir() else _read_archive(path)
    train = [_parse_batch(raw[name], f"{path}: {name}") for name in TRAIN_BATCHES]
    x_test, y_test = _parse_batch(raw[TEST_BATCH], f"{path}: {TEST_BATCH}")
    return Cifar10(np.concatenate([x for x, _ in train]), np.concatenate([y for _, y in train]),
                   x_test, y_test, source=text)


def cat_labels(class_ids: np.ndarray) -> np.ndarray:
    """The lab's labels, int64 ``(N,)``: 1 where the CIFAR-10 class is cat (3), else 0."""
    return (np.asarray(class_ids) == config.CAT_CLASS).astype(np.int64)


def stratified_split(class_ids: np.ndarray, val_fraction: float = config.VAL_FRACTION,
                     seed: int = config.SEED) -> tuple[np.ndarray, np.ndarray]:
    """Sorted train and validation positions, taking ``val_fraction`` of every class (so of the cats too)."""
    rng = np.random.default_rng(seed)
    val = []
    for cls in np.unique(class_ids):
        members = rng.permutation(np.flatnonzero(class_ids == cls))
        val.append(members[: int(round(len(members) * val_fraction))])
    val_idx = np.sort(np.concatenate(val))
    return np.setdiff1d(np.arange(len(class_ids)), val_idx), val_idx


def _split(images: np.ndarray, class_ids: np.ndarray, indices: np.ndarray) -> Split:
    return Split(images[indices], cat_labels(class_ids[indices]), class_ids[indices].astype(np.int64),
                 indices.astype(np.int64))


def prepare_splits(data: Cifar10, profile: config.Profile | None = None) -> dict[str, Split]:
    """``train``/``val`` (a stratified split of the official training set) and ``test`` (the official test set).

    ``profile`` (default: :func:`labutils.config.current_profile`) may keep only the leading images
    of each official set (smoke).
    """
    profile = profile or config.current_profile()
    n_train = min(profile.train_images or len(data.y_train), len(data.y_train))
    n_test = min(profile.test_images or len(data.y_test), len(data.y_test))
    train_idx, val_idx = stratified_split(data.y_train[:n_train])
    return {"train": _split(data.x_train, data.y_train, train_idx),
            "val": _split(data.x_train, data.y_train, val_idx),
            "test": _split(data.x_test, data.y_test, np.arange(n_test))}


def balance_table(splits: dict[str, Split]) -> pandas.DataFrame:
    """Images, cats and cat share (%) per split."""
    import pandas as pd

    return pd.DataFrame.from_dict({name: {"images": len(s.labels), "cats": int(s.labels.sum()),
                                          "cat %": round(100 * float(s.labels.mean()), 2)}
                                   for name, s in splits.items()}, orient="index")
