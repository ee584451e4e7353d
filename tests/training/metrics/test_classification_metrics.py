import numpy as np
import pytest

from training.data.dataset_index import LABEL_ALL
from training.metrics.classification_metrics import (
    best_balanced_accuracy_threshold,
    binary_metrics,
    mean_and_std,
    per_subject_accuracy,
)


def test_binary_metrics_on_a_known_confusion_matrix():
    labels = [0, 0, 0, 0, 1, 1, 1, 1, 1, 1]
    probabilities = [0.1, 0.2, 0.7, 0.3, 0.9, 0.8, 0.6, 0.4, 0.55, 0.95]
    metrics = binary_metrics(labels, probabilities, 0.5)
    assert metrics.confusion_matrix == [[3, 1], [1, 5]]
    assert metrics.accuracy == pytest.approx(0.8)
    assert metrics.precision == pytest.approx(5 / 6)
    assert metrics.recall == pytest.approx(5 / 6)
    assert metrics.specificity == pytest.approx(0.75)
    assert metrics.balanced_accuracy == pytest.approx((5 / 6 + 0.75) / 2)
    assert metrics.f1 == pytest.approx(5 / 6)
    assert metrics.weighted_f1 == pytest.approx(0.4 * 0.75 + 0.6 * (5 / 6))
    assert metrics.roc_auc == pytest.approx(21 / 24)
    assert metrics.n == 10


def test_single_class_data_reports_nan_rather_than_failing():
    metrics = binary_metrics([1, 1], [0.2, 0.9], 0.5)
    assert np.isnan(metrics.roc_auc)
    assert metrics.accuracy == 0.5


def test_per_subject_accuracy_and_fold_summary():
    accuracy = per_subject_accuracy(["a", "a", "H1"], [1, 1, 0], [0.9, 0.1, 0.2], 0.5)
    assert accuracy == {"H1": 1.0, "a": 0.5}
    summary = mean_and_std([{"n": 3, "roc_auc": 0.8}, {"n": 5, "roc_auc": 0.6}])
    assert summary == {"roc_auc": {"mean": pytest.approx(0.7), "std": pytest.approx(0.1)}}


def test_metrics_keep_the_report_order_and_name_the_monitored_figure():
    metrics = binary_metrics([0, 1, 1], [0.2, 0.7, 0.4], 0.5)
    assert list(metrics.as_dict()) == [
        "n",
        "threshold",
        "accuracy",
        "balanced_accuracy",
        "precision",
        "recall",
        "specificity",
        "f1",
        "weighted_f1",
        "roc_auc",
        "confusion_matrix",
    ]
    assert metrics.monitored("roc_auc") == metrics.roc_auc == 1.0
    assert metrics.monitored("balanced_accuracy") == metrics.balanced_accuracy == 0.75


def test_threshold_maximises_balanced_accuracy():
    labels = [0, 0, 0, 1, 1, 1]
    probabilities = [0.60, 0.65, 0.70, 0.80, 0.85, 0.90]
    threshold = best_balanced_accuracy_threshold(labels, probabilities)
    assert 0.70 < threshold <= 0.80
    assert binary_metrics(labels, probabilities, threshold).balanced_accuracy == 1.0
    assert best_balanced_accuracy_threshold([LABEL_ALL, LABEL_ALL], [0.2, 0.9]) == 0.5
