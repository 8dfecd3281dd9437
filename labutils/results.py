"""Each notebook's results, as ``records/results/<notebook>.json``.

Notebooks read each other's results from there and the grading report collects them. Each
notebook makes one call per model it saves: :func:`save_lab4_model` (02, twice),
:func:`save_transfer` (03), :func:`save_cam` (04); each works out from the model and its runs
what the record holds. Top-level fields: ``notebook``, ``profile`` (the current profile,
:func:`labutils.config.current_profile`), ``dataset`` ({"train", "val", "test"} sizes),
``test_examples``, ``metrics`` (see :func:`labutils.metrics.binary_metrics`), ``epochs``,
``seconds_per_epoch``, and per notebook ``models`` (02) or ``conv_base``, ``backbone``,
``input_size``, ``weights``, ``phases``, ``compared_with`` (03), or ``images`` (04).

Beside it, each trained model's test predictions, one row per test image
(:func:`write_predictions`): ``records/results/<notebook>.<model>.predictions.csv``
with the header ``index,score`` (``index``: the image's position in the official
CIFAR-10 test set; ``score``: the cat probability). The grader recomputes the test
metrics from these and its own copy of the labels, instead of trusting the JSON.

Importing this module does not import TensorFlow (the grader reads results without it).
"""
from __future__ import annotations

import json
import re
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from labutils import atomic, config, course

if TYPE_CHECKING:
    import keras

    from labutils.evaluation import Evaluation
    from labutils.training import Run


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


def rows(*records: dict) -> list[dict]:
    """One row per trained model of the given results (02 has two, 03 one), for a comparison table."""
    out = []
    for record in records:
        runs = ({f"{record['notebook']}: {name}": run for name, run in record["models"].items()}
                if "models" in record else
                {f"{record['notebook']}: {record['backbone']} {record['input_size']}px, "
                 f"weights={record['weights']}": record})
        for label, run in runs.items():
            out.append({"model": label, **{k: run["metrics"][k] for k in course.METRICS},
                        "epochs": run["epochs"], "seconds_per_epoch": run["seconds_per_epoch"]})
    return out


def summarize(*runs: Run) -> dict:
    """Epochs run and wall-clock seconds per epoch (one-off setup such as the bottleneck cache
    included) over consecutive runs (:class:`labutils.training.Run`), and the best monitored value."""
    epochs = sum(r.epochs for r in runs)
    return {"epochs": epochs, "seconds_per_epoch": sum(r.seconds for r in runs) / max(epochs, 1),
            f"best_{config.MONITOR}": max(r.best for r in runs)}


def _dataset(records_dir: Path) -> dict[str, int]:
    from labutils import tfrecords  # TensorFlow, only when a notebook saves (it has it loaded already)

    splits = tfrecords.read_manifest(records_dir)["splits"]
    return {split: splits[split]["examples"] for split in config.SPLITS}


def _read_or_none(notebook: str, results_dir: Path | None) -> dict | None:
    try:
        return read(notebook, results_dir)
    except (FileNotFoundError, json.JSONDecodeError):
        return None


def save_lab4_model(name: str, tests: Sequence[Evaluation], runs: Sequence[Run], seeds: Sequence[int], *,
                    records_dir: Path = config.RECORDS_DIR, results_dir: Path | None = None) -> dict:
    """Save notebook 02's Lab 4 CNN trained through pipeline ``name`` (``course.RAM`` or
    ``course.TFRECORD``) with each of ``seeds``: ``tests[k]`` and ``runs[k]`` belong to ``seeds[k]``.

    The first seed's model is the one reported and graded: its test predictions are written
    (:func:`write_predictions`) and its metrics, epochs and seconds per epoch make up
    ``models.<name>``, with ``seeds`` listing every seed's ROC-AUC, PR-AUC, F1 and epochs. The
    record keeps the other pipeline's entry when it was saved with the same profile and records;
    its top level repeats ``models.tfrecord`` (the deliverable). Returns the whole record.
    """
    nb = course.LAB4_NB
    first = tests[0]
    write_predictions(nb.stem, name, first.predictions.indices, first.predictions.scores, results_dir)
    record = {"notebook": nb.stem, "profile": config.current_profile().name, "dataset": _dataset(records_dir),
              "test_examples": len(first.predictions.indices), "models": {}}
    earlier = _read_or_none(nb.stem, results_dir)
    if earlier and all(earlier.get(k) == record[k] for k in ("profile", "dataset", "test_examples")):
        record["models"] = {k: v for k, v in earlier.get("models", {}).items() if k in nb.models}
    record["models"][name] = {
        "model": "lab4_cnn", "input_size": config.IMAGE_SHAPE[0], "metrics": first.metrics,
        **summarize(runs[0]),
        "seeds": [{"seed": seed, "epochs": run.epochs, **{k: test.metrics[k] for k in course.GRADER_METRICS}}
                  for seed, test, run in zip(seeds, tests, runs)]}
    record.update(record["models"].get(course.TFRECORD, {}))
    write(record, results_dir)
    return record


def conv_base_facts(model: keras.Model, backbone: str) -> dict:
    """What deliverable 2 asks of ``model``'s pretrained part, the layer named ``course.CONV_BASE``:
    its ``name``, ``include_top`` (whether any Dense layer, an ImageNet classifier, is left in it),
    ``backbone``, its number of ``layers`` and its ``output_shape`` (one image's feature maps)."""
    conv_base = model.get_layer(course.CONV_BASE)
    return {"name": conv_base.name, "backbone": backbone, "layers": len(conv_base.layers),
            "include_top": any(type(layer).__name__ == "Dense" for layer in conv_base.layers),
            "output_shape": list(conv_base.outputs[0].shape[1:])}


def save_transfer(model: keras.Model, test: Evaluation, head_run: Run, finetune_run: Run, backbone: str, *,
                  records_dir: Path = config.RECORDS_DIR, results_dir: Path | None = None) -> dict:
    """Save notebook 03's transfer model (``course.TRANSFER``) after its two phases.

    Writes its test predictions and ``records/results/03_resnet_transfer.json``: the test
    ``metrics``, both phases' epochs and seconds, ``conv_base`` (:func:`conv_base_facts`),
    ``backbone``, ``input_size`` (the side ``conv_base`` takes), ``weights`` (what
    :func:`labutils.backbones.build` loaded into it) and ``compared_with``: the models of
    notebook 02's results when they are there (else an empty list). Returns the record.
    """
    nb = course.TRANSFER_NB
    write_predictions(nb.stem, course.TRANSFER, test.predictions.indices, test.predictions.scores, results_dir)
    conv_base = model.get_layer(course.CONV_BASE)
    lab4 = _read_or_none(course.LAB4_NB.stem, results_dir)
    record = {"notebook": nb.stem, "profile": config.current_profile().name, "dataset": _dataset(records_dir),
              "test_examples": test.metrics["examples"], "metrics": test.metrics,
              **summarize(head_run, finetune_run),
              "backbone": backbone, "input_size": int(conv_base.inputs[0].shape[1]),
              "weights": getattr(conv_base, "weights_used", None),
              "phases": {"head": {"epochs": head_run.epochs, "bottleneck_cache_seconds": head_run.setup_seconds,
                                  "seconds_per_epoch": sum(head_run.epoch_seconds) / max(head_run.epochs, 1)},
                         "finetune": {"epochs": finetune_run.epochs,
                                      "seconds_per_epoch": sum(finetune_run.epoch_seconds)
                                      / max(finetune_run.epochs, 1),
                                      "unfrozen_layers": sum(bool(layer.trainable_weights)
                                                             for layer in conv_base.layers)}},
              course.CONV_BASE: conv_base_facts(model, backbone),
              "compared_with": [f"{course.LAB4_NB.stem}: {name}" for name in (lab4 or {}).get("models", {})]}
    write(record, results_dir)
    return record


def save_cam(model: keras.Model, backbone: str, layer: str, images: list[dict], skipped: Sequence, *,
             results_dir: Path | None = None) -> dict:
    """Save notebook 04's Grad-CAM results: ``images`` (one row per photo, from
    :func:`labutils.cam.summary`: ``image``, ``top3``, ``groups``, ``overlays``), the ``skipped``
    files (:class:`labutils.images.Skipped`: ``file`` and ``reason``), and the ``backbone``,
    its ``weights``, its ``input_size`` and the ``layer`` explained. Returns the record."""
    record = {"notebook": course.CAM_NB.stem, "profile": config.current_profile().name, "backbone": backbone,
              "weights": getattr(model, "weights_used", None), "input_size": int(model.inputs[0].shape[1]),
              "layer": layer, "images": images,
              "skipped": [{"file": s.path.name, "reason": s.reason} for s in skipped]}
    write(record, results_dir)
    return record
