"""Training histories and confusion matrices, in the style of ``tensorflow_docs.plots``.

One color per run; training solid, validation dashed; epochs numbered from 1.
"""
from __future__ import annotations

from typing import Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np

COLORS = plt.rcParams["axes.prop_cycle"].by_key()["color"]


def plot_history(histories: Mapping[str, Mapping[str, Sequence[float]]], metric: str = "pr_auc",
                 ax: plt.Axes | None = None, phase_ends: Sequence[int] = ()) -> plt.Axes:
    """Plot ``metric`` and ``val_<metric>`` per epoch for each named history (name -> Keras
    ``History.history``-like dict). ``phase_ends``: epochs after which a new phase starts (drawn
    as vertical lines).
    """
    ax = ax or plt.figure(figsize=(6, 4)).gca()
    for i, (name, history) in enumerate(histories.items()):
        color = COLORS[i % len(COLORS)]
        for key, style, label in ((metric, "-", "train"), (f"val_{metric}", "--", "val")):
            if key in history:
                values = history[key]
                ax.plot(np.arange(1, len(values) + 1), values, style, color=color, label=f"{name} {label}",
                        marker="o" if len(values) < 3 else None)
    for end in phase_ends:
        ax.axvline(end + 0.5, color="grey", linewidth=1)
    ax.set_xlabel("Epochs")
    ax.set_ylabel(metric.replace("_", " ").title().replace("Auc", "AUC"))
    ax.grid(True, alpha=0.3)
    ax.legend()
    return ax


def plot_histories(histories: Mapping[str, Mapping[str, Sequence[float]]],
                   metrics: Sequence[str] = ("loss", "pr_auc", "roc_auc"),
                   phase_ends: Sequence[int] = ()) -> plt.Figure:
    """One :func:`plot_history` panel per metric, side by side."""
    fig, axes = plt.subplots(1, len(metrics), figsize=(5 * len(metrics), 4), squeeze=False)
    for ax, metric in zip(axes[0], metrics):
        plot_history(histories, metric, ax=ax, phase_ends=phase_ends)
    fig.tight_layout()
    return fig


def plot_roc_pr(labels: np.ndarray, scores: Mapping[str, np.ndarray], title: str = "") -> plt.Figure:
    """Test ROC and precision-recall curves of several models scored on the same examples, side by side.

    ``labels``: 0/1 ``(N,)``; ``scores``: model name -> cat scores ``(N,)`` in the same order. The
    dashed lines are chance: the diagonal for ROC, the share of cats for precision-recall.
    """
    from sklearn.metrics import PrecisionRecallDisplay, RocCurveDisplay

    fig, (roc, pr) = plt.subplots(1, 2, figsize=(11, 4.5))
    for i, (name, values) in enumerate(scores.items()):
        color = COLORS[i % len(COLORS)]
        chance = i == len(scores) - 1  # drawn once
        RocCurveDisplay.from_predictions(labels, values, name=name, ax=roc, curve_kwargs={"color": color},
                                         plot_chance_level=chance)
        PrecisionRecallDisplay.from_predictions(labels, values, name=name, ax=pr, curve_kwargs={"color": color},
                                                plot_chance_level=chance)
    for ax, name in ((roc, "ROC"), (pr, "Precision-recall")):
        ax.set_title(f"{name}{': ' + title if title else ''}")
        ax.grid(True, alpha=0.3)
        ax.legend(loc="lower right" if ax is roc else "upper right", fontsize=8)
    fig.tight_layout()
    return fig


def plot_confusion_matrix(matrix: Sequence[Sequence[int]], ax: plt.Axes | None = None,
                          labels: Sequence[str] = ("not cat", "cat"), title: str = "") -> plt.Axes:
    """A 2x2 confusion matrix (rows = truth, columns = prediction) with counts in the cells."""
    matrix = np.asarray(matrix)
    ax = ax or plt.figure(figsize=(3.5, 3)).gca()
    ax.imshow(matrix, cmap="Blues")
    for (row, col), value in np.ndenumerate(matrix):
        ax.text(col, row, f"{value:,}", ha="center", va="center",
                color="white" if value > matrix.max() / 2 else "black")
    ax.set_xticks(range(len(labels)), labels)
    ax.set_yticks(range(len(labels)), labels)
    ax.set_xlabel("Predicted")
    ax.set_ylabel("True")
    ax.set_title(title)
    return ax
