"""Imbalanced metrics against values computed by hand, and the validation threshold."""
from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from labutils import course, metrics

# 3 cats among 10. By score, highest first: cat .9, other .8, cat .6, other .5, other .4, cat .3, others .2 .1 .05 0.
LABELS = np.array([1, 1, 1, 0, 0, 0, 0, 0, 0, 0])
SCORES = np.array([0.9, 0.6, 0.3, 0.8, 0.5, 0.4, 0.2, 0.1, 0.05, 0.0])


def test_metrics_equal_hand_computed_values():
    m = metrics.binary_metrics(LABELS, SCORES, threshold=0.5)
    # (cat, other) pairs ranked right: cat .9 beats 7 others, cat .6 beats 6, cat .3 beats 4 -> 17 of 21.
    assert m["roc_auc"] == pytest.approx(17 / 21)
    # Average precision: precision at each cat's rank (1, 3, 6), averaged: (1/1 + 2/3 + 3/6) / 3.
    assert m["pr_auc"] == pytest.approx((1 + 2 / 3 + 1 / 2) / 3)
    # score >= .5 says cat for .9 .6 (cats) and .8 .5 (others): TP 2, FP 2, FN 1, TN 5.
    assert m["confusion_matrix"] == [[5, 2], [1, 2]]
    assert m["precision"] == pytest.approx(2 / 4)
    assert m["recall"] == pytest.approx(2 / 3)
    assert m["f1"] == pytest.approx(2 * (1 / 2) * (2 / 3) / (1 / 2 + 2 / 3))
    assert m["accuracy"] == pytest.approx(7 / 10)
    assert m["never_cat_accuracy"] == pytest.approx(7 / 10)
    assert (m["threshold"], m["positives"], m["examples"]) == (0.5, 3, 10)
    assert set(m) == {*course.METRICS, "positives", "examples", "confusion_matrix"}


def test_threshold_is_a_boundary_case_inclusive():
    assert metrics.binary_metrics(LABELS, SCORES, threshold=0.6)["confusion_matrix"] == [[6, 1], [1, 2]]
    assert metrics.binary_metrics(LABELS, SCORES, threshold=0.61)["confusion_matrix"] == [[6, 1], [2, 1]]


def test_threshold_maximises_f1_and_prefers_recall_on_ties():
    # F1 by threshold: .9 -> 1/2, .8 -> 2/5, .6 -> 2/3, .5 -> 4/7, .4 -> 1/2, .3 -> 2/3 (all cats found).
    assert metrics.choose_threshold(LABELS, SCORES) == pytest.approx(0.3)
    assert metrics.choose_threshold([0, 1, 0, 1], [0.1, 0.8, 0.4, 0.7]) == pytest.approx(0.7)
    with pytest.raises(ValueError, match="No cat"):
        metrics.choose_threshold([0, 0], [0.2, 0.3])


def test_never_cat_baseline_scores_high_accuracy_and_zero_recall():
    labels = np.array([1] + [0] * 9)
    m = metrics.binary_metrics(labels, np.zeros(10), threshold=0.5)
    assert m["accuracy"] == m["never_cat_accuracy"] == pytest.approx(0.9)
    assert m["recall"] == m["precision"] == m["f1"] == 0.0
    assert m["roc_auc"] == pytest.approx(0.5)


def test_compare_says_about_the_same_only_beyond_sampling_noise():
    rng = np.random.default_rng(1)
    labels = (rng.random(2000) < 0.1).astype(int)
    good = labels + rng.normal(0, 0.5, 2000)  # ROC-AUC about 0.98
    poor = labels + rng.normal(0, 2.0, 2000)  # about 0.64
    assert "about the same" in metrics.compare("A", "B", labels, good, good + rng.normal(0, 1e-3, 2000))
    assert "A is better" in metrics.compare("A", "B", labels, good, poor)
    diff, low, high = metrics.auc_difference(labels, poor, good)
    assert low < diff < high and low > 0.2
    # Independent noise on only 10 cats: the interval is wide, differences are not called real.
    few = labels[:100]
    assert "about the same" in metrics.compare("A", "B", few, poor[:100], poor[:100] + rng.normal(0, 0.3, 100))


def test_bootstrap_auc_of_all_ones_counts_is_the_plain_auc():
    rng = np.random.default_rng(2)
    labels = (rng.random(300) < 0.2).astype(float)
    scores = np.round(labels + rng.normal(0, 1, 300), 1)  # rounded: many ties
    counts = np.ones((1, 300))
    assert metrics._bootstrap_aucs(labels, scores, counts)[0] == pytest.approx(roc_auc_score(labels, scores))
    twice = np.r_[np.ones(150) * 2, np.zeros(150)][None]  # the first half drawn twice, the rest never
    assert metrics._bootstrap_aucs(labels, scores, twice)[0] == pytest.approx(roc_auc_score(labels[:150], scores[:150]))
