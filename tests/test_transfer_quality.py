"""Transfer learning that shows the point: notebook 03's own code, with real ImageNet weights (MobileNet 0.25
at 224 px, whose no-top file the shared Keras cache holds), on the full shared subset, beats chance by far:
test ROC-AUC at least 0.88 on every test image. ResNet50, the notebook's default, takes the same path."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from labutils import cifar10, config, results, tfrecords

REPO = Path(__file__).resolve().parents[1]
NB03 = REPO / "notebooks" / "03_resnet_transfer.ipynb"


def test_notebook_03_with_real_imagenet_weights_learns_the_cat_question(tmp_path, cifar_subset_dir, keras_home):
    splits = cifar10.prepare_splits(cifar10.load(cifar_subset_dir), config.profile("full"))
    tfrecords.write_splits(splits, tmp_path / "records", progress=False)
    env = {**os.environ, "LAB5_ROOT": str(tmp_path), "LAB5_CIFAR10": str(cifar_subset_dir), "LAB5_PROFILE": "full"}
    run = subprocess.run([sys.executable, "-m", "papermill", str(NB03), str(tmp_path / NB03.name), "-k", "python3",
                          "--cwd", str(NB03.parent), "-p", "profile", "full", "-p", "backbone", "mobilenet_025",
                          "-p", "input_size", "224", "-p", "epochs_head", "10", "-p", "epochs_finetune", "3"],
                         env=env, capture_output=True, text=True, timeout=1500)
    assert run.returncode == 0, run.stderr[-3000:]
    record = results.read("03_resnet_transfer", tmp_path / "records" / "results")
    assert record["weights"] == "imagenet" and record["conv_base"]["include_top"] is False
    assert record["test_examples"] == len(splits["test"].labels) == 846
    assert record["metrics"]["roc_auc"] >= 0.88, record["metrics"]
    indices, scores = results.read_predictions("03_resnet_transfer", "transfer", tmp_path / "records" / "results")
    assert sorted(indices) == sorted(splits["test"].indices)  # every test image, each once
