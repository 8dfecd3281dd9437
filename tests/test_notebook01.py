"""Notebook 01 runs headlessly under papermill (smoke profile, real subset); `make test`'s nbval step
runs it too, so it is not run under nbval again here.

The papermill run is a student's plain kernel: no LAB5_PROFILE (``-p profile smoke`` chooses it)
and no TF_CPP_MIN_LOG_LEVEL, and no TensorFlow start-up line may show in its outputs."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import nbformat

from labutils import tfrecords

REPO = Path(__file__).resolve().parents[1]
NOTEBOOK = REPO / "notebooks" / "01_tfrecords.ipynb"


# TensorFlow's C++ start-up lines: none may reach a notebook's outputs (labutils.quiet_tf).
START_UP_LINES = ("absl::InitializeLog", "oneDNN custom operations", "cuInit", "cuda drivers",
                  "cpu_feature_guard", "rebuild TensorFlow", "buffer_size` is unspecified")


def lab_env(root: Path, cifar: Path, **extra: str) -> dict[str, str]:
    """The test's environment without LAB5_PROFILE and TF_CPP_MIN_LOG_LEVEL: what a student's
    kernel has, so the notebook must choose its profile and quiet TensorFlow itself."""
    plain = {k: v for k, v in os.environ.items() if k not in ("LAB5_PROFILE", "TF_CPP_MIN_LOG_LEVEL")}
    return {**plain, "LAB5_ROOT": str(root), "LAB5_CIFAR10": str(cifar), **extra}


def outputs(path: Path) -> str:
    """Everything the code cells showed: streams, plain-text results, errors."""
    return "".join(o.get("text", "") + o.get("data", {}).get("text/plain", "") + "".join(o.get("traceback", []))
                   for c in nbformat.read(path, 4).cells if c.cell_type == "code" for o in c.outputs)


def test_papermill_smoke_run_writes_verified_records(tmp_path, cifar_subset_dir):
    out = tmp_path / "01_out.ipynb"
    subprocess.run([sys.executable, "-m", "papermill", str(NOTEBOOK), str(out), "-k", "python3",
                    "-p", "profile", "smoke", "--cwd", str(NOTEBOOK.parent)],
                   env=lab_env(tmp_path, cifar_subset_dir), check=True, capture_output=True, timeout=300)
    manifest = tfrecords.read_manifest(tmp_path / "records")
    assert sum(s["examples"] for s in manifest["splits"].values()) == 1000 + 400  # the smoke profile's sizes
    assert manifest["splits"]["test"]["examples"] == 400
    text = outputs(out)
    assert "1,400 images verified byte for byte in 18 shards." in text
    assert "profile: smoke (chosen explicitly)" in text  # -p profile smoke, no LAB5_PROFILE
    assert not [line for line in START_UP_LINES if line in text], text

