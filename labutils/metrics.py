"""Honest metrics for an imbalanced binary task (about 10 % of CIFAR-10 is cat).

Scores are cat probabilities; an example is predicted "cat" when ``score >= threshold``.
The threshold is chosen on the validation split (:func:`choose_threshold`), never on test.
"""
from __future__ import annotations

import numpy as np
from sklearn import metrics as skm

def choose_threshold(labels: np.ndarray, scores: np.ndarray) -> float:
    """The score threshold that maximises F1 on the cat class for (validation) ``labels`` (0/1, (N,)).

    F1 rather than accuracy: on a 10 % positive task accuracy is maximised by (almost) never
    saying "cat". Ties go to the lowest such threshold, i.e. the higher recall.
    """
    labels, scores = np.asarray(labels).ravel(), np.asarray(scores, dtype=np.float64).ravel()
    if labels.sum() == 0:
        raise ValueError("No cat among the validation labels: cannot choose a threshold.")
    precision, recall, thresholds = skm.precision_recall_curve(labels, scores)
    # The last precision/recall pair (recall 0) has no threshold.
    precision, recall = precision[:-1], recall[:-1]
    f1 = np.divide(2 * precision * recall, precision + recall,
                   out=np.zeros_like(precision), where=(precision + recall) > 0)
    return float(thresholds[int(np.argmax(f1))])


def binary_metrics(labels: np.ndarray, scores: np.ndarray, threshold: float) -> dict:
    """Metrics of cat scores ``scores`` ((N,) floats in [0, 1]) against ``labels`` ((N,) 0/1).

    ``roc_auc`` and ``pr_auc`` (average precision) do not depend on the threshold; ``precision``,
    ``recall``, ``f1``, ``accuracy`` and ``confusion_matrix`` ([[TN, FP], [FN, TP]], rows = truth)
    do. ``never_cat_accuracy`` is the accuracy of always answering "not cat": the baseline to beat.
    Also ``threshold``, ``positives`` (cats) and ``examples``: the keys of ``course.METRICS`` and
    those three. Plain Python numbers, ready for JSON.
    """
    labels = np.asarray(labels).astype(np.int64).ravel()
    scores = np.asarray(scores, dtype=np.float64).ravel()
    if labels.shape != scores.shape:
        raise ValueError(f"{labels.shape[0]} labels but {scores.shape[0]} scores.")
    predicted = (scores >= threshold).astype(np.int64)
    both_classes = 0 < labels.sum() < labels.size
    return {
        "roc_auc": float(skm.roc_auc_score(labels, scores)) if both_classes else float("nan"),
        "pr_auc": float(skm.average_precision_score(labels, scores)) if labels.any() else float("nan"),
        "precision": float(skm.precision_score(labels, predicted, zero_division=0)),
        "recall": float(skm.recall_score(labels, predicted, zero_division=0)),
        "f1": float(skm.f1_score(labels, predicted, zero_division=0)),
        "accuracy": float(np.mean(predicted == labels)),
        "never_cat_accuracy": float(np.mean(labels == 0)),
        "threshold": float(threshold),
        "positives": int(labels.sum()),
        "examples": int(labels.size),
        "confusion_matrix": skm.confusion_matrix(labels, predicted, labels=[0, 1]).tolist(),
    }



def _bootstrap_aucs(labels: np.ndarray, scores: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """ROC-AUC of ``scores`` for each row of ``counts`` ((R, N): how often each example was drawn).

    The Mann-Whitney form: the weighted share of (cat, other) pairs ranked right, ties counting half.
    """
    order = np.argsort(scores, kind="stable")
    sorted_scores, y, counts = scores[order], labels[order], counts[:, order]
    starts = np.flatnonzero(np.r_[True, sorted_scores[1:] != sorted_scores[:-1]])  # groups of tied scores
    pos = np.add.reduceat(counts * y, starts, axis=1)
    neg = np.add.reduceat(counts * (1 - y), starts, axis=1)
    below = np.cumsum(neg, axis=1) - neg
    return (pos * (below + 0.5 * neg)).sum(axis=1) / (pos.sum(axis=1) * neg.sum(axis=1))


def auc_difference(labels: np.ndarray, scores_a: np.ndarray, scores_b: np.ndarray,
                   resamples: int = 1000, seed: int = 0) -> tuple[float, float, float]:
    """ROC-AUC of ``scores_b`` minus that of ``scores_a`` on the same examples, with a 95 % paired
    bootstrap interval: redraw the test set with replacement ``resamples`` times and look at the
    spread of the difference. Returns (difference, low, high).
    """
    labels = np.asarray(labels, dtype=np.float64).ravel()
    scores_a, scores_b = np.asarray(scores_a).ravel(), np.asarray(scores_b).ravel()
    rng = np.random.default_rng(seed)
    diffs = []
    for chunk in np.array_split(np.arange(resamples), max(1, resamples // 100)):
        counts = rng.multinomial(len(labels), np.full(len(labels), 1 / len(labels)), size=len(chunk)).astype(np.float64)
        both = ((counts * labels).sum(axis=1) > 0) & ((counts * (1 - labels)).sum(axis=1) > 0)
        counts = counts[both]  # a resample needs both classes to have an AUC
        diffs.append(_bootstrap_aucs(labels, scores_b, counts) - _bootstrap_aucs(labels, scores_a, counts))
    low, high = np.percentile(np.concatenate(diffs), [2.5, 97.5])
    diff = skm.roc_auc_score(labels, scores_b) - skm.roc_auc_score(labels, scores_a)
    return float(diff), float(low), float(high)


def compare_seeds(name_a: str, aucs_a: list[float], name_b: str, aucs_b: list[float],
                  negligible: float = 0.01) -> str:
    """One sentence comparing two pipelines' test ROC-AUC over several training seeds each.

    "About the same" when the difference of the means is within two standard errors of that
    difference (the seed-to-seed spread: training noise) or below ``negligible``.
    """
    a, b = np.asarray(aucs_a, dtype=np.float64), np.asarray(aucs_b, dtype=np.float64)
    if min(len(a), len(b)) < 2:
        raise ValueError("compare_seeds needs at least two seeds per pipeline; use compare() for one")
    diff = b.mean() - a.mean()
    se = float(np.sqrt(a.var(ddof=1) / len(a) + b.var(ddof=1) / len(b)))
    verdict = ("about the same: the difference is within what another set of seeds could give"
               if abs(diff) <= 2 * se else f"about the same: the difference is real but below {negligible}"
               if abs(diff) < negligible else
               f"{name_b if diff > 0 else name_a} is better, beyond the seed-to-seed spread")
    return (f"Test ROC-AUC over {len(a)} and {len(b)} seeds: {name_a} {a.mean():.3f} ± {a.std(ddof=1):.3f}, "
            f"{name_b} {b.mean():.3f} ± {b.std(ddof=1):.3f} (mean ± standard deviation); difference {diff:+.3f}, "
            f"standard error {se:.3f}: {verdict}.")


def compare(name_a: str, name_b: str, labels: np.ndarray, scores_a: np.ndarray, scores_b: np.ndarray,
            negligible: float = 0.01) -> str:
    """One sentence comparing two models' test ROC-AUC on the same examples.

    "About the same" when the 95 % bootstrap interval of the difference contains 0 (another draw
    of the test set could reverse it) or the difference is below ``negligible`` (too small to matter).
    """
    auc_a, auc_b = skm.roc_auc_score(labels, scores_a), skm.roc_auc_score(labels, scores_b)
    diff, low, high = auc_difference(labels, scores_a, scores_b)
    verdict = ("about the same: the difference is within what another draw of the test set could give"
               if low <= 0 <= high else
               f"about the same: the difference is real but below {negligible}"
               if abs(diff) < negligible else
               f"{name_b if diff > 0 else name_a} is better, beyond test-set sampling noise")
    return (f"Test ROC-AUC: {name_a} {auc_a:.3f}, {name_b} {auc_b:.3f}; difference {diff:+.3f} "
            f"(95 % bootstrap interval {low:+.3f} to {high:+.3f}, {int(np.sum(labels))} cats): {verdict}.")
