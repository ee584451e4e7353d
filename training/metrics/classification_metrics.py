"""Classification metrics from scikit-learn (ROC AUC, balanced accuracy, ...), in the form every
report in the project uses; not the server's Prometheus metrics (app/web/prometheus_metrics.py)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from typing import Literal

import numpy as np
from pydantic import BaseModel
from sklearn import metrics as skm

MetricValue = float | int | list[list[int]]
Monitor = Literal["roc_auc", "balanced_accuracy"]
SINGLE_CLASS_THRESHOLD = 0.5
"""What `best_balanced_accuracy_threshold` answers when only one class is there to separate."""


class BinaryMetrics(BaseModel):
    """The figures of `binary_metrics`, in the order every report writes them (ALL positive)."""

    n: int
    threshold: float
    accuracy: float
    balanced_accuracy: float
    precision: float
    recall: float
    specificity: float
    f1: float
    weighted_f1: float
    roc_auc: float
    confusion_matrix: list[list[int]]
    """[[HEM called HEM, HEM called ALL], [ALL called HEM, ALL called ALL]]"""

    def monitored(self, name: Monitor) -> float:
        return self.roc_auc if name == "roc_auc" else self.balanced_accuracy

    def as_dict(self) -> dict[str, MetricValue]:
        """The figures as a card's evaluation holds them."""
        return dict(self.model_dump())


def binary_metrics(
    labels: Sequence[int] | np.ndarray,
    probabilities: Sequence[float] | np.ndarray,
    threshold: float,
) -> BinaryMetrics:
    """The paper's metrics (accuracy, precision, recall, F1), the challenge's weighted F1, and
    the threshold-free and imbalance-aware ones that a 1:2 HEM:ALL data set needs."""
    y_true = np.asarray(labels, dtype=int)
    y_prob = np.asarray(probabilities, dtype=float)
    y_pred = (y_prob >= threshold).astype(int)
    both_classes = len(np.unique(y_true)) == 2
    confusion = skm.confusion_matrix(y_true, y_pred, labels=[0, 1])
    tn, fp, fn, tp = (int(v) for v in confusion.ravel())
    return BinaryMetrics(
        n=len(y_true),
        threshold=float(threshold),
        accuracy=float(skm.accuracy_score(y_true, y_pred)),
        balanced_accuracy=float(skm.balanced_accuracy_score(y_true, y_pred))
        if both_classes
        else float("nan"),
        precision=float(skm.precision_score(y_true, y_pred, zero_division=0)),
        recall=float(skm.recall_score(y_true, y_pred, zero_division=0)),
        specificity=tn / (tn + fp) if tn + fp else float("nan"),
        f1=float(skm.f1_score(y_true, y_pred, zero_division=0)),
        weighted_f1=float(skm.f1_score(y_true, y_pred, average="weighted", zero_division=0)),
        roc_auc=float(skm.roc_auc_score(y_true, y_prob)) if both_classes else float("nan"),
        confusion_matrix=[[tn, fp], [fn, tp]],
    )


def per_subject_accuracy(
    subjects: Sequence[str], labels: Sequence[int], probabilities: Sequence[float], threshold: float
) -> dict[str, float]:
    """Accuracy within each subject: a subject-level failure hides inside pooled numbers."""
    hits: dict[str, list[bool]] = defaultdict(list)
    for subject, label, probability in zip(subjects, labels, probabilities, strict=True):
        hits[subject].append(int(probability >= threshold) == int(label))
    return {subject: float(np.mean(values)) for subject, values in sorted(hits.items())}


def mean_and_std(per_fold: Sequence[Mapping[str, object]]) -> dict[str, dict[str, float]]:
    """Mean ± std of each scalar figure across folds (not the count `n`)."""
    keys = [k for k, v in per_fold[0].items() if isinstance(v, int | float) and k != "n"]
    summary: dict[str, dict[str, float]] = {}
    for key in keys:
        values = np.asarray([fold[key] for fold in per_fold], dtype=float)
        summary[key] = {"mean": float(np.nanmean(values)), "std": float(np.nanstd(values))}
    return summary


def best_balanced_accuracy_threshold(
    labels: Sequence[int] | np.ndarray, probabilities: Sequence[float] | np.ndarray
) -> float:
    """The threshold with the best balanced accuracy (Youden's J); 0.5 for one class."""
    y_true = np.asarray(labels, dtype=int)
    if len(np.unique(y_true)) < 2:
        return SINGLE_CLASS_THRESHOLD
    fpr, tpr, thresholds = skm.roc_curve(y_true, np.asarray(probabilities, dtype=float))
    finite = np.isfinite(thresholds)
    best = int(np.argmax((tpr - fpr)[finite]))
    return float(np.clip(thresholds[finite][best], 0.0, 1.0))
