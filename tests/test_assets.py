"""The offline asset cache: registry vs. installed Keras, status, --from copies, and fast failures offline.

No test here reaches the internet: "offline" is a refused or a silent local port.
"""
from __future__ import annotations

import dataclasses
import filecmp
import inspect
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from labutils import assets, config

REPO = Path(__file__).resolve().parents[1]
SHARED_PRESENT = ("imagenet_class_index", "mobilenet_025_128", "mobilenet_025_224_notop")


@pytest.fixture
def cache(tmp_path, monkeypatch) -> Path:
    """An empty, writable Keras cache as KERAS_HOME."""
    home = tmp_path / "keras_home"
    home.mkdir()
    monkeypatch.setenv("KERAS_HOME", str(home))
    return home


@pytest.fixture
def shared_copy(keras_home, tmp_path) -> Path:
    """A writable copy of ../shared/keras_home."""
    copy = tmp_path / "shared_copy"
    shutil.copytree(keras_home, copy)
    for path in [copy, *copy.rglob("*")]:
        path.chmod(path.stat().st_mode | 0o200)
    return copy


def cli(*args: str, home: Path, extra_env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, "KERAS_HOME": str(home)}
    env.pop("LAB5_CIFAR10", None)  # CIFAR-10 only from the cache, unless the test names a local copy
    return subprocess.run([sys.executable, "-m", "labutils.assets", *args], cwd=REPO, capture_output=True,
                          text=True, timeout=120, env={**env, **(extra_env or {})})


def table(stdout: str) -> dict[str, list[str]]:
    return {line.split()[0]: line.split() for line in stdout.splitlines()[1:] if line.strip()}


@pytest.fixture
def unreachable(monkeypatch):
    """Point every asset at a local port that refuses connections."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # closed again: nothing listens there
    for name, asset in assets.ASSETS.items():
        monkeypatch.setitem(assets.ASSETS, name, dataclasses.replace(
            asset, origin=f"http://127.0.0.1:{port}/{asset.filename}"))


def test_registry_matches_the_installed_keras():
    from keras.src.applications import imagenet_utils, mobilenet, resnet, vgg16
    from keras.src.datasets import cifar10

    a = assets.ASSETS
    assert a["resnet50_notop"].origin == resnet.BASE_WEIGHTS_PATH + a["resnet50_notop"].filename
    assert a["resnet50_notop"].file_hash == resnet.WEIGHTS_HASHES["resnet50"][1]
    assert 'f"{weights_name}_weights_tf_dim_ordering_tf_kernels_notop.h5"' in inspect.getsource(resnet)
    assert a["resnet50_notop"].filename == "resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5"
    assert a["vgg16"].origin == vgg16.WEIGHTS_PATH
    vgg_source = inspect.getsource(vgg16.VGG16)
    assert f'"{a["vgg16"].filename}"' in vgg_source and f'"{a["vgg16"].file_hash}"' in vgg_source
    assert a["imagenet_class_index"].origin == imagenet_utils.CLASS_INDEX_PATH
    assert f'"{a["imagenet_class_index"].file_hash}"' in inspect.getsource(imagenet_utils.decode_predictions)
    for name in ("mobilenet_025_128", "mobilenet_025_224_notop"):
        assert a[name].origin == mobilenet.BASE_WEIGHT_PATH + a[name].filename
    cifar_source = inspect.getsource(cifar10.load_data)
    assert config.CIFAR10_URL in cifar_source and config.CIFAR10_SHA256 in cifar_source
    assert a["cifar10"].path.parent.name == "datasets" and a["cifar10"].filename == "cifar-10-python.tar.gz"


def test_status_of_the_shared_cache(shared_copy, monkeypatch):
    run = cli("status", home=shared_copy)
    rows = table(run.stdout)
    for name in SHARED_PRESENT:
        asset = assets.ASSETS[name]
        assert rows[name][1] == "present", run.stdout
        assert str(shared_copy / asset.subdir / asset.filename) in rows[name]
    for name in ("resnet50_notop", "vgg16", "cifar10"):
        assert rows[name][1] == "missing", run.stdout
    assert run.returncode == 1  # a required asset is missing

    monkeypatch.setenv("KERAS_HOME", str(shared_copy))
    by_name = {row["name"]: row for row in assets.status(verify=True)}
    index = by_name["imagenet_class_index"]
    assert index["size"] == (shared_copy / "models" / "imagenet_class_index.json").stat().st_size
    assert index["hash_ok"] is True  # the shared file is Keras' own
    assert by_name["vgg16"]["size"] is None and not by_name["vgg16"]["present"]


def test_fetch_from_a_folder_copies_and_checks(shared_copy, cache):
    run = cli("fetch", "--all", "--from", str(shared_copy), home=cache)
    assert run.returncode == 1, run.stdout  # ResNet50, VGG16 and CIFAR-10 are not in that folder
    rows = table(run.stdout)
    for name in SHARED_PRESENT:
        asset = assets.ASSETS[name]
        assert rows[name][1] == "copied"
        assert filecmp.cmp(shared_copy / asset.subdir / asset.filename, cache / asset.subdir / asset.filename,
                           shallow=False)
    assert "vgg16_weights_tf_dim_ordering_tf_kernels.h5" in run.stderr and str(shared_copy) in run.stderr
    assert not list(cache.rglob("*.part"))

    again = cli("fetch", "imagenet_class_index", "--from", str(shared_copy), home=cache)
    assert again.returncode == 0 and table(again.stdout)["imagenet_class_index"][1] == "present"


def test_fetch_from_refuses_a_file_with_the_wrong_hash(tmp_path, cache):
    flat = tmp_path / "flat"
    flat.mkdir()
    (flat / "imagenet_class_index.json").write_text('{"0": ["n01440764", "tench"]}')
    run = cli("fetch", "imagenet_class_index", "--from", str(flat), home=cache)
    assert run.returncode == 1 and "hash mismatch" in run.stderr
    assert not (cache / "models" / "imagenet_class_index.json").exists()
    assert not list(cache.rglob("*.part"))


def test_fetch_offline_fails_once_and_fast_with_the_fix(cache, unreachable, capsys):
    start = time.monotonic()
    outcomes = assets.fetch()
    assert time.monotonic() - start < 5
    first, *rest = [outcomes[name] for name in ("cifar10", "resnet50_notop", "vgg16", "imagenet_class_index")]
    assert "cifar-10-python.tar.gz" in first and "python -m labutils.assets fetch" in first and "KERAS_HOME" in first
    assert all(outcome.startswith("not tried: no network") for outcome in rest)  # one failure, no more attempts
    assert not list(cache.rglob("*"))


def test_fetch_gives_up_on_a_silent_server(cache, monkeypatch):
    with socket.socket() as silent:  # accepts connections (kernel backlog), never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        asset = dataclasses.replace(assets.ASSETS["imagenet_class_index"],
                                    origin=f"http://127.0.0.1:{silent.getsockname()[1]}/index.json")
        monkeypatch.setitem(assets.ASSETS, asset.name, asset)
        start = time.monotonic()
        outcome = assets.fetch([asset.name], timeout=1)[asset.name]
        assert time.monotonic() - start < 10
    assert "imagenet_class_index.json" in outcome and "KERAS_HOME" in outcome


def test_a_notebook_call_fails_at_once_naming_the_asset(cache, monkeypatch):
    """What a notebook cell sees offline: backbones.build raises the message, after one refused connection."""
    from keras.src.applications import resnet

    from labutils import backbones

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    monkeypatch.setattr(resnet, "BASE_WEIGHTS_PATH", f"http://127.0.0.1:{port}/")
    monkeypatch.setenv("LAB5_PROFILE", "full")  # smoke would build with random weights instead
    start = time.monotonic()
    with pytest.raises(assets.AssetMissingError) as err:
        backbones.build("resnet50", include_top=False, weights="imagenet", input_shape=(32, 32, 3))
    assert time.monotonic() - start < 30  # building the random-init graph is most of it
    message = str(err.value)
    assert "resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5" in message
    assert "python -m labutils.assets fetch" in message and "KERAS_HOME" in message


def test_a_silent_server_is_not_a_hang_for_notebooks(cache, monkeypatch):
    import keras

    monkeypatch.setattr(config, "DOWNLOAD_TIMEOUT_S", 1)
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        start = time.monotonic()
        with pytest.raises(assets.AssetMissingError) as err, assets.explain_missing("models"):
            keras.utils.get_file("vgg16_weights_tf_dim_ordering_tf_kernels.h5",
                                 f"http://127.0.0.1:{silent.getsockname()[1]}/vgg16.h5",
                                 cache_subdir="models", cache_dir=str(cache))
        assert time.monotonic() - start < 10
    assert "vgg16_weights_tf_dim_ordering_tf_kernels.h5" in str(err.value) and "KERAS_HOME" in str(err.value)
    assert socket.getdefaulttimeout() is None  # restored


def test_every_asset_has_a_hash_and_the_shared_files_match_theirs(shared_copy, monkeypatch):
    assert all(a.expected_hash for a in assets.ASSETS.values())
    for name in ("mobilenet_025_128", "mobilenet_025_224_notop", "imagenet_class_index"):
        assert len(assets.ASSETS[name].sha256) == 64  # a SHA-256, computed once from a good copy
    monkeypatch.setenv("KERAS_HOME", str(shared_copy))
    assert {r["name"]: r["hash_ok"] for r in assets.status(verify=True)}["mobilenet_025_224_notop"] is True


def test_a_truncated_weights_file_is_named_with_its_fix(shared_copy):
    weights = shared_copy / "models" / "mobilenet_2_5_224_tf_no_top.h5"
    weights.write_bytes(weights.read_bytes()[:100_000])
    run = cli("status", "--verify", home=shared_copy)
    assert table(run.stdout)["mobilenet_025_224_notop"][1:3] == ["BAD", "HASH"]
    assert f"{weights} (" in run.stdout and "python -m labutils.assets fetch mobilenet_025_224_notop" in run.stdout

    # Keras reads KERAS_HOME once, at import: load in a process of its own, as a notebook would.
    load = ("from labutils import backbones\nbackbones.build('mobilenet_025', include_top=False, "
            "weights='imagenet', input_shape=(224, 224, 3))")
    run = subprocess.run([sys.executable, "-c", load], cwd=REPO, capture_output=True, text=True, timeout=300,
                         env={**os.environ, "KERAS_HOME": str(shared_copy), "LAB5_PROFILE": "full"})
    assert run.returncode != 0 and "AssetMissingError" in run.stderr and "is damaged or truncated" in run.stderr
    assert str(weights) in run.stderr and "fetch mobilenet_025_224_notop" in run.stderr


def test_status_counts_the_local_cifar10_in_use(cache, cifar_subset_dir):
    run = cli("status", home=cache, extra_env={"LAB5_CIFAR10": str(cifar_subset_dir)})
    row = next(line for line in run.stdout.splitlines() if line.startswith("cifar10 "))
    assert "present" in row and str(cifar_subset_dir) in row and "in use: LAB5_CIFAR10" in row
