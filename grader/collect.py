"""Reading what a submission left, trusting none of it: bounded reads and metrics the grader computes itself.

Every file is opened without following symlinks and without blocking (a FIFO
named like a results file is reported, never waited on), must be a regular file,
and is read up to a size cap. The test metrics in the report come from the
student's saved predictions (``results.write_predictions``) scored against the
true labels of the grader's own CIFAR-10; the student's own numbers are kept,
labelled self-reported, and compared.
"""
from __future__ import annotations

import functools
import json
import math
import os
import re
import stat
from pathlib import Path

import nbformat
import numpy as np

from labutils import config, course, results

# The metrics the grader recomputes from a model's saved predictions, and the count of test images scored.
KEY_METRICS = (*course.GRADER_METRICS, "test_examples")
RESULTS_CAP = 2_000_000  # bytes of one results JSON or predictions CSV (10,000 rows are ~200 kB)
OUTPUT_CAP = 20_000_000  # bytes of one log or executed notebook kept in the grader's outputs
PARSE_CAP = 10 * OUTPUT_CAP  # an executed notebook larger than this is not even parsed
# The grader's and the student's ROC-AUC / PR-AUC agree when within half the last digit the report
# shows (3 decimals): the predictions file keeps 9 significant digits, enough for float32 scores, so
# honest numbers agree to ~1e-12; a difference under this could not change a number in the report.
METRIC_TOLERANCE = 5e-4
# Cells papermill adds to its output notebook; they are not counted in "cell N".
INSERTED_TAGS = {"injected-parameters", "papermill-error-cell-tag"}
ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


class Unreadable(ValueError):
    """A file the grader will not read: not a regular file, too large, or missing."""


def read_bounded(path: Path, cap: int) -> bytes:
    """The bytes of regular file ``path`` (symlinks not followed, FIFOs not opened for a blocking read)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError as err:
        raise Unreadable("a symlink" if err.errno == 40 else f"cannot open: {err.strerror}") from None
    with os.fdopen(fd, "rb") as handle:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise Unreadable("not a regular file")
        if info.st_size > cap:
            raise Unreadable(f"{info.st_size:,} bytes, over the grader's {cap:,}-byte limit")
        data = handle.read(cap + 1)
    if len(data) > cap:  # grew while read
        raise Unreadable(f"over the grader's {cap:,}-byte limit")
    return data


def snapshot(folder: Path) -> dict[str, tuple]:
    """``{name: (type, inode, mtime_ns, size)}`` of every entry of ``folder`` (lstat: nothing followed)."""
    stamps = {}
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return stamps
    for entry in entries:
        try:
            info = entry.stat(follow_symlinks=False)
        except OSError:  # removed while we look
            continue
        stamps[entry.name] = (stat.S_IFMT(info.st_mode), info.st_ino, info.st_mtime_ns, info.st_size)
    return stamps


def _number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def key_metrics(doc, source: str) -> list[dict]:
    """Rows of the key metrics (``KEY_METRICS``) a results document states, with the key ``path`` they sit at.

    A dict with ``roc_auc``/``pr_auc``/``f1`` (itself or in its ``metrics`` dict)
    makes a row; its ``path`` leaves out ``models`` and ``metrics`` (so
    ``{"models": {"ram": {"metrics": {...}}}}`` gives path "ram"), and ``model`` is
    the path or, at the top, its ``backbone``/``model`` name. A document with
    ``models`` lists those only (its top-level numbers repeat one of them).
    ``test_examples`` and ``profile`` are inherited from enclosing dicts.
    """
    rows: list[dict] = []

    def walk(node, path: list[str], inherited: dict) -> None:
        if not isinstance(node, dict):
            return
        own = {k: node[k] for k in KEY_METRICS if _number(node.get(k))}
        if isinstance(node.get("metrics"), dict):
            own.update({k: node["metrics"][k] for k in KEY_METRICS if _number(node["metrics"].get(k))})
        if isinstance(node.get("profile"), str):
            own["profile"] = node["profile"]
        context = {**inherited, **{k: v for k, v in own.items() if k in ("test_examples", "profile")}}
        if any(k in own for k in course.GRADER_METRICS) and not isinstance(node.get("models"), dict):
            named = next((node[k] for k in ("backbone", "model") if isinstance(node.get(k), str)), None)
            rows.append({"source": source, "path": "/".join(path), "model": "/".join(path) or named,
                         **context, **own})
        for key, child in node.items():
            if key != "metrics":
                walk(child, path if key == "models" else [*path, key], context)

    walk(doc, [], {})
    return rows


@functools.lru_cache(maxsize=None)
def true_labels(profile: str) -> np.ndarray:
    """Cat labels (int64, (N,)) of the profile's test images, from the grader's own CIFAR-10 (``LAB5_CIFAR10``)."""
    from labutils import cifar10  # numpy + pickle only; loaded once per grading run

    labels = cifar10.cat_labels(cifar10.load().y_test)
    count = config.profile(profile).test_images
    return labels[:count] if count else labels


def parse_predictions(data: bytes) -> tuple[np.ndarray, np.ndarray]:
    """``index,score`` CSV -> int64 indices (N,), float64 scores (N,); ValueError names the first bad line."""
    lines = data.decode("utf-8", errors="replace").splitlines()
    if not lines or lines[0].strip() != "index,score":
        raise ValueError("first line is not the header index,score")
    indices, scores = [], []
    for number, line in enumerate(lines[1:], start=2):
        if not line.strip():
            continue
        try:
            index, score = line.split(",")
            indices.append(int(index))
            scores.append(float(score))
        except ValueError:
            raise ValueError(f"line {number} is not index,score: {line[:60]!r}") from None
    scores_array = np.asarray(scores, dtype=np.float64)
    if not np.all(np.isfinite(scores_array)):
        raise ValueError("a score is not a finite number")
    return np.asarray(indices, dtype=np.int64), scores_array


def score_predictions(indices: np.ndarray, scores: np.ndarray, labels: np.ndarray,
                      threshold: float | None) -> dict:
    """The grader's metrics of one model: ROC-AUC, PR-AUC, test count (and F1 at the student's threshold)."""
    from sklearn import metrics as skm

    if len(np.unique(indices)) != len(indices):
        raise ValueError(f"{len(indices) - len(np.unique(indices))} test image(s) listed twice")
    outside = indices[(indices < 0) | (indices >= len(labels))]
    if outside.size:
        raise ValueError(f"index {int(outside[0])} is not among the {len(labels)} test images of this profile")
    truth = labels[indices]
    if truth.min(initial=1) == truth.max(initial=0):
        raise ValueError(f"the {len(truth)} listed images hold only one class: no ROC-AUC")
    row = {"roc_auc": float(skm.roc_auc_score(truth, scores)),
           "pr_auc": float(skm.average_precision_score(truth, scores)), "test_examples": int(len(indices))}
    if _number(threshold):
        row["f1"] = float(skm.f1_score(truth, (scores >= threshold).astype(np.int64), zero_division=0))
    if len(indices) != len(labels):
        row["problem"] = f"covers {len(indices)} of the {len(labels)} test images"
    return row


def mismatches(grader: dict, student: dict) -> list[str]:
    """Where the student's numbers differ from the grader's (``METRIC_TOLERANCE``; counts exactly)."""
    found = []
    for key in ("roc_auc", "pr_auc"):
        if key in student and key in grader and abs(student[key] - grader[key]) > METRIC_TOLERANCE:
            found.append(f"{key} {student[key]:.4f} stated, {grader[key]:.4f} computed")
    if "test_examples" in student and student["test_examples"] != grader.get("test_examples"):
        found.append(f"test_examples {student['test_examples']} stated, {grader.get('test_examples')} found")
    return found


def _threshold(doc, path: str) -> float | None:
    node = doc.get("models", {}).get(path, {}) if path and isinstance(doc, dict) else doc
    metrics = node.get("metrics") if isinstance(node, dict) else None
    return metrics.get("threshold") if isinstance(metrics, dict) else None


def notebook_results(folder: Path, before: dict[str, tuple], root: Path, notebook: str,
                     profile: str) -> tuple[list[str], list[dict]]:
    """The results files ``notebook`` (a stem, e.g. ``02_lab4_retrain``) wrote since ``before``, and metric rows.

    One row per model with a predictions file: the grader's numbers, the student's
    (``self_reported``) from ``<notebook>.json`` and any ``mismatch``; one row per
    other model the JSON states (``checked`` False: self-reported only); a row
    with ``unreadable`` per file that could not be read.
    """
    files, docs, predictions, rows = [], {}, {}, []
    for name, stamp in sorted(snapshot(folder).items()):
        if before.get(name) == stamp:
            continue
        files.append(str((folder / name).relative_to(root)))
        if not (name.endswith(".json") or name.endswith(results.PREDICTIONS_SUFFIX)):
            continue
        try:
            data = read_bounded(folder / name, RESULTS_CAP)
            if name.endswith(".json"):
                docs[name] = json.loads(data)
            else:
                predictions[name] = parse_predictions(data)
        except (Unreadable, ValueError) as err:  # one odd file is reported, the rest still read
            rows.append({"source": name, "unreadable": f"{type(err).__name__}: {err}"})
    stated = [row for name, doc in docs.items() for row in key_metrics(doc, name)]
    own_doc = docs.get(f"{notebook}.json", {})
    for name, (indices, scores) in predictions.items():
        model = name[:-len(results.PREDICTIONS_SUFFIX)].split(".", 1)[-1]
        # 02 states each model under models.<name>; 03 (one model) at its top level
        claim = next((r for r in stated if r["source"] == f"{notebook}.json" and r["path"] == model), None) \
            or next((r for r in stated if r["source"] == f"{notebook}.json" and r["path"] == ""), None)
        if claim is not None:
            stated.remove(claim)
        row = {"source": name, "model": model, "checked": True,
               "self_reported": {k: claim[k] for k in KEY_METRICS if claim and k in claim}}
        try:
            row.update(score_predictions(indices, scores, true_labels(profile),
                                         _threshold(own_doc, claim["path"] if claim else "")))
            row["mismatch"] = mismatches(row, row["self_reported"])
        except Exception as err:  # bad indices, or the grader's own CIFAR-10 unavailable: say so in the row
            row["problem"] = f"not scored: {err}"
        rows.append(row)
    for claim in stated:
        rows.append({"source": claim["source"], "model": claim["model"], "checked": False,
                     "self_reported": {k: claim[k] for k in KEY_METRICS if k in claim},
                     "problem": "no predictions file"})
    return files, rows


def read_notebook(path: Path, source: Path) -> tuple[dict | None, bytes | None, str | None]:
    """An executed notebook, bounded: ``(parsed, bytes to keep, note)``.

    Over ``OUTPUT_CAP`` the largest outputs are dropped (a note in their place) until it fits;
    over ``PARSE_CAP`` the notebook as submitted (``source``) is kept instead, a note cell on top;
    unreadable (missing, cut short by a kill, not a regular file), nothing is kept.
    """
    try:
        data = read_bounded(path, PARSE_CAP)
        nb = nbformat.reads(data.decode("utf-8", errors="replace"), as_version=4)
    except Unreadable as err:
        if "limit" not in str(err):
            return None, None, f"executed notebook not kept: {err}"
        try:
            nb = nbformat.reads(read_bounded(source, OUTPUT_CAP).decode("utf-8", errors="replace"), as_version=4)
        except Exception:  # the submitted notebook is itself too large or unreadable
            return None, None, f"executed notebook not kept: {err}"
        note = f"executed notebook not kept ({err}): the notebook as submitted, without outputs, kept instead"
        nb.cells.insert(0, nbformat.v4.new_markdown_cell(f"**Grader:** {note}."))
        return None, nbformat.writes(nb).encode(), note
    except Exception as err:
        return None, None, f"executed notebook not kept: {type(err).__name__}: {err}"
    if len(data) <= OUTPUT_CAP:
        return nb, data, None
    outputs = sorted(((len(json.dumps(out)), cell, i) for cell in nb.cells for i, out in enumerate(cell.get("outputs", []))),
                     key=lambda item: -item[0])
    size, dropped = len(data), 0
    for length, cell, i in outputs:
        if size <= OUTPUT_CAP:
            break
        cell.outputs[i] = nbformat.v4.new_output("stream", name="stderr",
                                                 text=f"[output of {length:,} bytes removed by the grader: "
                                                      f"notebook over {OUTPUT_CAP:,} bytes]\n")
        size, dropped = size - length, dropped + 1
    note = f"executed notebook was {len(data):,} bytes: {dropped} largest output(s) removed to fit {OUTPUT_CAP:,}"
    return nb, nbformat.writes(nb).encode(), note


def clean(text) -> str | None:
    """Text from a notebook or log, without terminal colour codes."""
    return None if text is None else ANSI.sub("", str(text))


def locate(nb, want: str) -> dict:
    """A cell of an executed notebook: the first that raised (``want="error"``), the one running
    (``"running"``), or the last one started (``"last"``: where a dying kernel stopped).
    """
    if nb is None:
        return {}
    position, found = 0, {}
    for cell in nb.cells:
        if INSERTED_TAGS & set(cell.metadata.get("tags", [])):
            continue
        position += 1
        papermill = cell.metadata.get("papermill", {})
        if want == "running" and papermill.get("status") == "running":
            return {"cell": position}
        if want == "last" and papermill.get("start_time"):  # papermill marks even unstarted cells "completed"
            found = {"cell": position}
        if want == "error":
            for out in cell.get("outputs", []):
                # papermill treats a bare sys.exit() / sys.exit(0) as success; so do we
                if out.get("output_type") == "error" and not (out.get("ename") == "SystemExit"
                                                               and out.get("evalue") in ("", "0")):
                    return {"cell": position, "execution_count": cell.get("execution_count"),
                            "error": clean(out.get("ename")), "message": clean(out.get("evalue"))}
            if papermill.get("exception"):
                return {"cell": position, "execution_count": cell.get("execution_count")}
    return found


def log_tail(log: Path, size: int = 20000) -> str:
    """The last ``size`` bytes of a child's log, as text without colour codes ("" when unreadable)."""
    try:
        with open(log, "rb") as handle:
            handle.seek(max(0, os.fstat(handle.fileno()).st_size - size))
            return clean(handle.read().decode(errors="replace"))
    except OSError:
        return ""


def last_error_line(log: Path) -> tuple[str | None, str | None]:
    """``(name, message)`` of the last "SomeError: message" line of a child's log (papermill or kernel failure)."""
    text = log_tail(log)
    if not text:
        return None, None
    for line in reversed(text.splitlines()):
        match = re.match(r"^([A-Za-z_][\w.]*(?:Error|Exception|Exit|Interrupt))(?::\s*(.*))?$", line.strip())
        if match:
            return match.group(1).rsplit(".", 1)[-1], match.group(2) or ""
    lines = [ln for ln in text.splitlines() if ln.strip()]
    return None, lines[-1].strip() if lines else None
