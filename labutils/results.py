"""Each training notebook's results, as ``records/results/<notebook>.json``.

Notebooks read each other's results from there and the grading report collects them.
Top-level fields: ``notebook``, ``profile``, ``dataset`` ({"train", "val", "test"} sizes),
``test_examples``, ``metrics`` (see :func:`labutils.metrics.binary_metrics`), ``epochs``,
``seconds_per_epoch``, and per notebook ``models`` (02) or ``backbone``/``input_size``/``weights`` (03).

Beside it, each trained model's test predictions, one row per test image
(:func:`write_predictions`): ``records/results/<notebook>.<model>.predictions.csv``
with the header ``index,score`` (``index``: the image's position in the official
CIFAR-10 test set; ``score``: the cat probability). The grader recomputes the test
metrics from these and its own copy of the labels, instead of trusting the JSON.
"""
from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np

from labutils import atomic, config


def path(notebook: str, results_dir: Path | None = None) -> Path:
    """Where the results of ``notebook`` (its file name without ``.ipynb``) live."""
    return Path(results_dir or config.RESULTS_DIR) / f"{Path(notebook).stem}.json"


PREDICTIONS_SUFFIX = ".predictions.csv"
MODEL_NAME = re.compile(r"^[a-z0-9_]{1,40}$")


def predictions_path(notebook: str, model: str, results_dir: Path | None = None) -> Path:
    """Where the test predictions of ``model`` (a short lower-case name: ``ram``, ``transfer``) of ``notebook`` live."""
    if not MODEL_NAME.match(model):
        raise ValueError(f"model name {model!r}: use 1-40 lower-case letters, digits or underscores")
    return Path(results_dir or config.RESULTS_DIR) / f"{Path(notebook).stem}.{model}{PREDICTIONS_SUFFIX}"


def write_predictions(notebook: str, model: str, indices: np.ndarray, scores: np.ndarray,
                      results_dir: Path | None = None) -> Path:
    """Save one model's test predictions atomically: int ``indices`` (N,) and float cat ``scores`` (N,) in [0, 1]."""
    indices, scores = np.asarray(indices).reshape(-1), np.asarray(scores, dtype=np.float64).reshape(-1)
    if indices.shape != scores.shape:
        raise ValueError(f"{indices.size} indices but {scores.size} scores")
    lines = ["index,score", *(f"{int(i)},{float(s):.9g}" for i, s in zip(indices, scores))]
    return atomic.write_text(predictions_path(notebook, model, results_dir), "\n".join(lines) + "\n")


def read_predictions(notebook: str, model: str, results_dir: Path | None = None) -> tuple[np.ndarray, np.ndarray]:
    """What :func:`write_predictions` saved: int64 ``indices`` (N,) and float64 ``scores`` (N,)."""
    source = predictions_path(notebook, model, results_dir)
    if not source.is_file():
        raise FileNotFoundError(f"No predictions at {source}: run notebooks/{Path(notebook).stem}.ipynb first.")
    table = np.loadtxt(source, delimiter=",", skiprows=1, ndmin=2)
    return table[:, 0].astype(np.int64), table[:, 1]


def _plain(value):
    # numpy scalars and arrays are not JSON serialisable; their Python equivalents are.
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def write(record: dict, results_dir: Path | None = None) -> Path:
    """Write ``record`` (which names its ``notebook``) atomically: a reader never sees half a file."""
    return atomic.write_text(path(record["notebook"], results_dir), json.dumps(record, indent=2, default=_plain) + "\n")


def read(notebook: str, results_dir: Path | None = None) -> dict:
    """The results ``notebook`` wrote; a FileNotFoundError says which notebook to run first."""
    source = path(notebook, results_dir)
    if not source.is_file():
        raise FileNotFoundError(f"No results at {source}: run notebooks/{Path(notebook).stem}.ipynb first.")
    return json.loads(source.read_text())


COLUMNS = ("roc_auc", "pr_auc", "precision", "recall", "f1", "accuracy", "never_cat_accuracy", "threshold")


def rows(*records: dict) -> list[dict]:
    """One row per trained model of the given results (02 has two, 03 one), for a comparison table."""
    out = []
    for record in records:
        runs = ({f"{record['notebook']}: {name}": run for name, run in record["models"].items()}
                if "models" in record else
                {f"{record['notebook']}: {record['backbone']} {record['input_size']}px, "
                 f"weights={record['weights']}": record})
        for label, run in runs.items():
            out.append({"model": label, **{k: run["metrics"][k] for k in COLUMNS},
                        "epochs": run["epochs"], "seconds_per_epoch": run["seconds_per_epoch"]})
    return out
