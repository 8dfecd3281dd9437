"""Notebook 01 runs headlessly under papermill (smoke profile, real subset) and under nbval."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import nbformat

from labutils import tfrecords

REPO = Path(__file__).resolve().parents[1]
NOTEBOOK = REPO / "notebooks" / "01_tfrecords.ipynb"


def lab_env(root: Path, cifar: Path, **extra: str) -> dict[str, str]:
    return {**os.environ, "LAB5_ROOT": str(root), "LAB5_CIFAR10": str(cifar), **extra}


def test_papermill_smoke_run_writes_verified_records(tmp_path, cifar_subset_dir):
    out = tmp_path / "01_out.ipynb"
    subprocess.run([sys.executable, "-m", "papermill", str(NOTEBOOK), str(out), "-k", "python3",
                    "-p", "profile", "smoke", "--cwd", str(NOTEBOOK.parent)],
                   env=lab_env(tmp_path, cifar_subset_dir), check=True, capture_output=True, timeout=300)
    manifest = tfrecords.read_manifest(tmp_path / "records")
    assert sum(s["examples"] for s in manifest["splits"].values()) == 1000 + 400  # the smoke profile's sizes
    text = "".join(o.get("text", "") for c in nbformat.read(out, 4).cells if c.cell_type == "code" for o in c.outputs)
    assert "1,400 images verified byte for byte in 18 shards." in text


def test_nbval_smoke_run(tmp_path, cifar_subset_dir):
    result = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--nbval-lax",
                             "--nbval-current-env", str(NOTEBOOK)],
                            env=lab_env(tmp_path, cifar_subset_dir, LAB5_PROFILE="smoke"),
                            capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert result.returncode == 0, result.stdout[-3000:]
    assert json.loads((tmp_path / "records" / "manifest.json").read_text())["splits"]["test"]["examples"] == 400
