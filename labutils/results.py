"""Each training notebook's results, as ``records/results/<notebook>.json``.

Notebooks read each other's results from there and the grading report collects them.
Top-level fields: ``notebook``, ``profile``, ``dataset`` ({"train", "val", "test"} sizes),
``test_examples``, ``metrics`` (see :func:`labutils.metrics.binary_metrics`), ``epochs``,
``seconds_per_epoch``, and per notebook ``models`` (02) or ``backbone``/``input_size``/``weights`` (03).
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from labutils import atomic, config


def path(notebook: str, results_dir: Path | None = None) -> Path:
    """Where the results of ``notebook`` (its file name without ``.ipynb``) live."""
    return Path(results_dir or config.RESULTS_DIR) / f"{Path(notebook).stem}.json"


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
