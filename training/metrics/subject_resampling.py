"""Figures with 95% intervals from resampling whole subjects (cells of one patient are not
independent): the stratified subject draws and the metrics computed on each draw.

ROC AUC here is the Mann-Whitney form, equal to scikit-learn's `roc_auc_score` (a test checks
it, ties included) and about fifteen times faster, which thousands of draws need; the error
rates at a threshold are vectorised for the same reason."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Sequence

import numpy as np
from pydantic import BaseModel
from scipy.stats import rankdata
from sklearn import metrics as skm

from training.data.dataset_index import LABEL_ALL, LABEL_HEM


class Interval(BaseModel):
    value: float
    low: float
    high: float


class AtThreshold(BaseModel):
    """The figures at a decision threshold, each with its interval; None without a threshold.
    A base listed first, so that its fields follow those of the base after it."""

    balanced_accuracy: Interval | None = None
    sensitivity: Interval | None = None
    specificity: Interval | None = None
    confusion_matrix: list[list[int]] | None = None
    """[[tn, fp], [fn, tp]] at the threshold."""

    @staticmethod
    def measure(
        labels: np.ndarray, scores: np.ndarray, threshold: float, draws: list[np.ndarray]
    ) -> AtThreshold:
        """Each threshold metric with its interval over `draws`, and the confusion matrix."""
        figures = {
            name: metric_interval(metric, labels, scores, draws)
            for name, metric in threshold_metrics(threshold).items()
        }
        return AtThreshold(**figures, confusion_matrix=confusion_matrix(labels, scores, threshold))


def subject_resamples(
    subjects: Sequence[str], labels: np.ndarray, resamples: int, seed: int
) -> list[np.ndarray]:
    """Bootstrap draws of whole subjects, stratified by class (each draw keeps as many ALL and
    HEM subjects as the data has): cells of one patient are not independent."""
    rng = np.random.default_rng(seed)
    cells_of: dict[str, list[int]] = defaultdict(list)
    for position, subject in enumerate(subjects):
        cells_of[subject].append(position)
    by_class = {
        label: sorted({s for s, y in zip(subjects, labels, strict=True) if y == label})
        for label in (LABEL_ALL, LABEL_HEM)
    }
    draws = []
    for _ in range(resamples):
        chosen = [
            subject
            for members in by_class.values()
            if members
            for subject in rng.choice(members, size=len(members), replace=True)
        ]
        draws.append(np.concatenate([cells_of[s] for s in chosen]))
    return draws


MetricFunction = Callable[[np.ndarray, np.ndarray], float]


def roc_auc(labels: np.ndarray, scores: np.ndarray) -> float:
    """The Mann-Whitney form of ROC AUC (ties count half), equal to scikit-learn's
    `roc_auc_score` and about fifty times faster, which thousands of resamples need."""
    positives = labels == LABEL_ALL
    n_positive = int(positives.sum())
    n_negative = len(labels) - n_positive
    if n_positive == 0 or n_negative == 0:
        return float("nan")
    ranks = rankdata(scores)
    return float(
        (ranks[positives].sum() - n_positive * (n_positive + 1) / 2) / (n_positive * n_negative)
    )


def threshold_metrics(threshold: float) -> dict[str, MetricFunction]:
    def sensitivity(labels: np.ndarray, scores: np.ndarray) -> float:
        positives = labels == LABEL_ALL
        return float((scores[positives] >= threshold).mean()) if positives.any() else np.nan

    def specificity(labels: np.ndarray, scores: np.ndarray) -> float:
        negatives = labels == LABEL_HEM
        return float((scores[negatives] < threshold).mean()) if negatives.any() else np.nan

    def balanced_accuracy(labels: np.ndarray, scores: np.ndarray) -> float:
        return (sensitivity(labels, scores) + specificity(labels, scores)) / 2

    return {
        "balanced_accuracy": balanced_accuracy,
        "sensitivity": sensitivity,
        "specificity": specificity,
    }


def confusion_matrix(labels: np.ndarray, scores: np.ndarray, threshold: float) -> list[list[int]]:
    """[[tn, fp], [fn, tp]]: the counts the blast-share correction's posteriors start from."""
    matrix = skm.confusion_matrix(labels == LABEL_ALL, scores >= threshold, labels=[False, True])
    return [[int(count) for count in row] for row in matrix]


def metric_interval(
    metric: MetricFunction, labels: np.ndarray, scores: np.ndarray, draws: list[np.ndarray]
) -> Interval:
    values = np.asarray([metric(labels[d], scores[d]) for d in draws])
    values = values[np.isfinite(values)]
    low, high = np.percentile(values, [2.5, 97.5]) if values.size else (np.nan, np.nan)
    return Interval(value=metric(labels, scores), low=float(low), high=float(high))
