"""Shared fixtures: where the real test data in ``../shared`` is, and an offline Keras cache.

Tests that need real data skip, saying why, when ``../shared`` (or
``$LAB5_SHARED``) is absent.
"""
from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("LAB5_SHARED") or REPO.parent / "shared")
CIFAR_SUBSET = SHARED / "datasets" / "cifar10-subset"
SHARED_KERAS_HOME = SHARED / "keras_home"
SHARED_IMAGES = SHARED / "images"

# Keras reads KERAS_HOME once, when it is imported: point it at a writable copy of
# the shared cache before any test imports keras (Keras writes keras.json there).
if SHARED_KERAS_HOME.is_dir():
    _home = Path(tempfile.mkdtemp(prefix="lab5-keras-home-"))
    shutil.copytree(SHARED_KERAS_HOME, _home, dirs_exist_ok=True)
    for _path in [_home, *_home.rglob("*")]:  # the shared files are read-only
        _path.chmod(_path.stat().st_mode | 0o200)
    os.environ["KERAS_HOME"] = str(_home)
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def _need(path: Path) -> Path:
    if not path.exists():
        pytest.skip(f"real test data missing: {path} (set LAB5_SHARED to the folder holding datasets/, keras_home/, images/)")
    return path


@pytest.fixture(scope="session")
def cifar_subset_dir() -> Path:
    """``cifar-10-batches-py/`` of the shared 5,506-image CIFAR-10 subset."""
    return _need(CIFAR_SUBSET / "cifar-10-batches-py")


@pytest.fixture(scope="session")
def cifar_subset_archive() -> Path:
    """The shared subset packed like the official ``cifar-10-python.tar.gz``."""
    return _need(CIFAR_SUBSET / "cifar-10-python-subset.tar.gz")


@pytest.fixture(scope="session")
def keras_home() -> Path:
    """The writable copy of ``shared/keras_home`` that ``KERAS_HOME`` points at."""
    _need(SHARED_KERAS_HOME)
    return Path(os.environ["KERAS_HOME"])


@pytest.fixture(scope="session")
def shared_images() -> Path:
    """Licensed cat and dog photos."""
    return _need(SHARED_IMAGES)


def _splits(cifar_dir: Path, profile: str) -> dict:
    from labutils import cifar10, config

    return cifar10.prepare_splits(cifar10.load(cifar_dir), config.profile(profile))


def _records(splits: dict, out: Path) -> Path:
    from labutils import tfrecords

    tfrecords.write_splits(splits, out, progress=False)
    return out


@pytest.fixture(scope="session")
def full_splits(cifar_subset_dir) -> dict:
    """The shared subset cut as the ``full`` profile cuts it: 4,194 train, 466 val, 846 test."""
    return _splits(cifar_subset_dir, "full")


@pytest.fixture(scope="session")
def full_records(full_splits, tmp_path_factory) -> Path:
    """TFRecords of ``full_splits`` (read-only for tests: copy before damaging)."""
    return _records(full_splits, tmp_path_factory.mktemp("full-records"))


@pytest.fixture(scope="session")
def smoke_splits(cifar_subset_dir) -> dict:
    """The shared subset cut as the ``smoke`` profile cuts it: 900 train, 100 val, 400 test."""
    return _splits(cifar_subset_dir, "smoke")


@pytest.fixture(scope="session")
def smoke_records(smoke_splits, tmp_path_factory) -> Path:
    """TFRecords of ``smoke_splits`` (read-only for tests: copy before damaging)."""
    return _records(smoke_splits, tmp_path_factory.mktemp("smoke-records"))
