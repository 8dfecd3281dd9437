"""What the harder self-checks cost a student: each check timed on a correct solution, before (the check
as it was at BEFORE, loaded from git) and now, printed (run with -s to see it), not asserted: the time
depends on the machine and its load."""
from __future__ import annotations

import shutil
import subprocess
import time
import types
from pathlib import Path

import pytest

from labutils import models
from labutils.checks import gradcam, pipeline, records, transfer

import test_checks_gradcam as cases_gradcam
import test_checks_pipeline as cases_pipeline
import test_checks_records as cases_records
import test_checks_transfer as cases_transfer

BEFORE = "06d3f55"  # the commit before the checks were made to tell the wrong solutions of issue "OK means right"
REPO = Path(__file__).resolve().parents[1]


def _before(module: types.ModuleType) -> types.ModuleType:
    """``module`` as it was at ``BEFORE`` (skips the test when git or that commit is not there)."""
    path = f"labutils/checks/{Path(module.__file__).name}"
    if shutil.which("git") is None:
        pytest.skip("git is needed to load the checks as they were")
    shown = subprocess.run(["git", "show", f"{BEFORE}:{path}"], cwd=REPO, capture_output=True, text=True)
    if shown.returncode:
        pytest.skip(f"{BEFORE}:{path} is not in this repository: {shown.stderr.strip()}")
    old = types.ModuleType(f"before_{module.__name__.rsplit('.', 1)[-1]}")
    exec(compile(shown.stdout, f"{BEFORE}:{path}", "exec"), old.__dict__)
    return old


def _seconds(run) -> float:
    start = time.perf_counter()
    run()
    return time.perf_counter() - start


def _report(name: str, run_before, run_now) -> None:
    run_now()  # warm up: TensorFlow's first calls, datasets and caches, shared by both
    before, now = _seconds(run_before), _seconds(run_now)
    print(f"\n[cost] {name}: before {before:.2f} s, now {now:.2f} s, added {now - before:+.2f} s")


def test_cost_of_the_records_checks(smoke_splits, smoke_records):
    old = _before(records)
    _report("check_make_example", lambda: old.check_make_example(cases_records.reordered, smoke_splits["train"]),
            lambda: records.check_make_example(cases_records.reordered, smoke_splits["train"]))
    _report("check_parse_batch",
            lambda: old.check_parse_batch(cases_records.parse_whole_batch, records_dir=smoke_records),
            lambda: records.check_parse_batch(cases_records.parse_whole_batch, records_dir=smoke_records))


def test_cost_of_the_pipeline_check(smoke_records):
    old, ds = _before(pipeline), lambda: cases_pipeline.lab_chain(smoke_records, 32)
    _report("check_training_dataset", lambda: old.check_training_dataset(ds(), records_dir=smoke_records),
            lambda: pipeline.check_training_dataset(ds(), records_dir=smoke_records))


def test_cost_of_the_transfer_checks():
    old, model = _before(transfer), cases_transfer.notebook_model()
    size = cases_transfer.SIZE
    _report("check_model", lambda: old.check_model(model, cases_transfer.BACKBONE, size),
            lambda: transfer.check_model(model, cases_transfer.BACKBONE, size))
    resnet = models.transfer_model("resnet50", weights=None, input_size=160)  # the full profile's backbone
    _report("check_model (resnet50 at 160)", lambda: old.check_model(resnet, "resnet50", 160),
            lambda: transfer.check_model(resnet, "resnet50", 160))


def test_cost_of_the_gradcam_check(setup):
    old, (model, layer, x) = _before(gradcam), setup
    _report("check_heatmap", lambda: old.check_heatmap(cases_gradcam.keras_io, model, layer, x),
            lambda: gradcam.check_heatmap(cases_gradcam.keras_io, model, layer, x))


setup = cases_gradcam.setup
