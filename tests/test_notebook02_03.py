"""Notebooks 02 and 03 run headlessly (papermill; `make test` runs nbval on them too) in the smoke profile on the real subset,
from records written for a temp LAB5_ROOT, and write the results JSON the grader reads."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from labutils import cifar10, config, results, tfrecords

REPO = Path(__file__).resolve().parents[1]
NB02, NB03 = REPO / "notebooks" / "02_lab4_retrain.ipynb", REPO / "notebooks" / "03_resnet_transfer.ipynb"
METRICS = {"roc_auc", "pr_auc", "precision", "recall", "f1", "accuracy", "never_cat_accuracy", "threshold",
           "confusion_matrix"}


# TensorFlow's C++ start-up lines: none may reach a notebook's outputs (labutils.quiet_tf).
START_UP_LINES = ("absl::InitializeLog", "oneDNN custom operations", "cuInit", "cuda drivers",
                  "cpu_feature_guard", "rebuild TensorFlow", "buffer_size` is unspecified")


def lab_env(root: Path, cifar: Path) -> dict[str, str]:
    """A student's plain kernel: no LAB5_PROFILE (papermill's ``-p profile smoke`` must be what every
    labutils call acts on) and no TF_CPP_MIN_LOG_LEVEL (the notebook quiets TensorFlow itself).
    KERAS_HOME: conftest's temp copy of the shared cache, without ResNet50 weights, so notebook 03
    runs only if the smoke profile's stand-ins are used."""
    plain = {k: v for k, v in os.environ.items() if k not in ("LAB5_PROFILE", "TF_CPP_MIN_LOG_LEVEL")}
    return {**plain, "LAB5_ROOT": str(root), "LAB5_CIFAR10": str(cifar)}


def write_smoke_records(root: Path, cifar: Path) -> None:
    splits = cifar10.prepare_splits(cifar10.load(cifar), config.profile("smoke"))
    tfrecords.write_splits(splits, root / "records", progress=False)


@pytest.fixture(scope="session")
def papermill_root(tmp_path_factory, cifar_subset_dir) -> Path:
    """A LAB5_ROOT with smoke records, where 02 then 03 have run under papermill."""
    root = tmp_path_factory.mktemp("lab5-root")
    write_smoke_records(root, cifar_subset_dir)
    for notebook in (NB02, NB03):
        subprocess.run([sys.executable, "-m", "papermill", str(notebook), str(root / notebook.name),
                        "-k", "python3", "-p", "profile", "smoke", "--cwd", str(notebook.parent)],
                       env=lab_env(root, cifar_subset_dir), check=True, capture_output=True, timeout=600)
    return root


def outputs(path: Path) -> str:
    """Printed text, plain-text results (tables) and errors of every code cell."""
    return "".join(o.get("text", "") + o.get("data", {}).get("text/plain", "") + "".join(o.get("traceback", []))
                   for c in nbformat.read(path, 4).cells if c.cell_type == "code" for o in c.outputs)


@pytest.mark.parametrize("notebook", [NB02, NB03], ids=lambda p: p.stem)
def test_the_parameter_chooses_the_profile_and_no_start_up_line_shows(papermill_root, notebook):
    text = outputs(papermill_root / notebook.name)
    assert "profile: smoke (chosen explicitly)" in text
    assert not [line for line in START_UP_LINES if line in text], text


def test_02_writes_both_models_and_the_deliverable(papermill_root):
    record = results.read("02_lab4_retrain", papermill_root / "records" / "results")
    assert (record["notebook"], record["profile"]) == ("02_lab4_retrain", "smoke")
    assert record["dataset"] == {"train": 900, "val": 100, "test": 400} and record["test_examples"] == 400
    assert set(record["models"]) == {"ram", "tfrecord"}
    for run in record["models"].values():
        assert METRICS <= set(run["metrics"]) and run["metrics"]["examples"] == 400
        assert run["epochs"] == 1 and run["seconds_per_epoch"] > 0
        assert 0 <= run["metrics"]["roc_auc"] <= 1 and sum(map(sum, run["metrics"]["confusion_matrix"])) == 400
    assert record["metrics"] == record["models"]["tfrecord"]["metrics"]
    assert record["models"]["ram"]["metrics"]["never_cat_accuracy"] == pytest.approx(1 - 38 / 400)
    text = outputs(papermill_root / NB02.name)
    assert "Test ROC-AUC: RAM" in text and "Training throughput: RAM" in text and "TFRecord/RAM = " in text
    assert (papermill_root / "records" / "checkpoints" / f"02_lab4_tfrecord_seed{config.SEED}.weights.h5").is_file()
    assert list((papermill_root / "records" / "logs" / f"02_lab4_ram_seed{config.SEED}").rglob("events.out.tfevents.*"))
    for name in ("ram", "tfrecord"):  # saved for the grader: every test image once, with its score
        indices, scores = results.read_predictions("02_lab4_retrain", name, papermill_root / "records" / "results")
        assert sorted(indices) == list(range(400)) and ((scores >= 0) & (scores <= 1)).all()
        assert [s["seed"] for s in record["models"][name]["seeds"]] == [config.SEED]


def test_03_writes_the_transfer_results_and_compares_with_02(papermill_root):
    record = results.read("03_resnet_transfer", papermill_root / "records" / "results")
    assert (record["notebook"], record["profile"], record["test_examples"]) == ("03_resnet_transfer", "smoke", 400)
    assert METRICS <= set(record["metrics"]) and record["metrics"]["examples"] == 400
    assert (record["backbone"], record["input_size"]) == ("resnet50", 32)
    assert record["weights"] is None  # ResNet50 weights are not in the shared cache: smoke fell back
    assert record["epochs"] == 2 and record["seconds_per_epoch"] > 0
    assert record["phases"]["finetune"]["unfrozen_layers"] == 10  # ResNet50's conv5 convolutions
    assert record["conv_base"]["name"] == "conv_base" and record["conv_base"]["include_top"] is False
    assert record["compared_with"] == ["02_lab4_retrain: ram", "02_lab4_retrain: tfrecord"]
    text = outputs(papermill_root / NB03.name)
    assert "Using random weights instead" in text and "OK unfreeze_top" in text
    assert "02_lab4_retrain: tfrecord" in text and "03_resnet_transfer: resnet50 32px" in text  # comparison table


@pytest.mark.parametrize("notebook", [NB02, NB03], ids=lambda p: p.stem)
def test_committed_clean_with_parameters_first(notebook):
    nb = nbformat.read(notebook, 4)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert all(not c.outputs and c.execution_count is None for c in code)
    assert code[0].metadata.get("tags") == ["parameters"] and "profile = None" in code[0].source
    if notebook == NB03:
        for name in ("backbone = \"resnet50\"", "input_size =", "epochs_head =", "epochs_finetune =",
                     "weights = \"imagenet\""):
            assert name in code[0].source
    assert all(len(c.source.splitlines()) <= 25 for c in code)  # short cells
    for cell in code:  # an exercise is a short function a student can read and change
        if "### BEGIN SOLUTION" in cell.source:
            assert "def " in cell.source and len(cell.source.splitlines()) <= 25
