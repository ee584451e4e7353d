from pathlib import Path

import numpy as np
import pytest

from app.core.classifier import sigmoid
from training.data.dataset_index import LABEL_ALL, LABEL_HEM, CellImage
from training.data.predictions import Predictions
from training.fit.artifacts import CvDir, RunDir
from training.metrics.classification_metrics import best_balanced_accuracy_threshold
from training.release.decision_rule import (
    DEFAULT_RULE,
    HeldOut,
    choose_decision_rule,
    held_out_predictions,
)


def held_out(seed: int = 0, n: int = 200) -> Predictions:
    """Logits that rank ALL above HEM, shifted and scaled as class-balanced training leaves them."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 2, n)
    logits = 2.5 * (rng.normal(0.0, 1.0, n) + 1.5 * (labels - 0.5)) - 1.0
    images = tuple(
        CellImage(path=Path(f"{i}.png"), subject=f"{'' if y else 'H'}{i % 7}", label=int(y))
        for i, y in enumerate(labels)
    )
    return Predictions(images=images, logits=logits, probabilities=sigmoid(logits))


def test_the_rule_is_chosen_on_calibrated_held_out_probabilities():
    predictions = held_out()
    rule = choose_decision_rule(HeldOut(predictions, "the run's held-out subjects"))
    assert rule.calibration is not None
    assert rule.calibration.fitted_on == "the run's held-out subjects"
    calibrated = sigmoid(rule.calibration.apply(predictions.logits))
    assert np.array_equal(rule.probabilities(predictions.logits), calibrated)
    assert rule.threshold == best_balanced_accuracy_threshold(predictions.labels, calibrated)
    choice = rule.threshold_choice()
    assert choice.value == rule.threshold
    assert choice.source == (
        "best balanced accuracy (Youden's J) on the run's held-out subjects, "
        "calibrated probabilities"
    )


def test_without_held_out_predictions_the_rule_is_the_uncalibrated_default(tmp_path):
    assert held_out_predictions(RunDir(tmp_path), None) is None
    rule = choose_decision_rule(None)
    assert rule == DEFAULT_RULE
    assert rule.calibration is None
    assert rule.threshold_choice().model_dump() == {
        "value": 0.5,
        "source": "default 0.5: no validation data was given",
    }
    assert rule.probabilities(np.array([0.0])) == pytest.approx([0.5])


def test_out_of_fold_predictions_come_before_the_runs_own(tmp_path):
    run, cv = RunDir(tmp_path / "run"), CvDir(tmp_path / "cv")
    run.path.mkdir()
    cv.path.mkdir()
    run.write_validation_predictions(held_out(seed=1))
    cv.write_out_of_fold(held_out(seed=2))
    assert held_out_predictions(run, None).description == "the run's held-out subjects"
    from_cv = held_out_predictions(run, cv)
    # the folder's name only: a card carries no local path
    assert from_cv.description == "out-of-fold predictions of the cross-validation cv"
    assert str(tmp_path) not in from_cv.description
    assert from_cv.predictions.subjects == held_out(seed=2).subjects
    assert choose_decision_rule(from_cv).chosen_on == from_cv.description
    assert {LABEL_ALL, LABEL_HEM} == set(from_cv.predictions.labels.tolist())


def test_the_uncalibrated_half_threshold_calls_as_the_raw_model_at_0_5():
    from training.release.decision_rule import UNCALIBRATED_HALF, HeldOut

    predictions = held_out(seed=3)
    rule = choose_decision_rule(HeldOut(predictions, "oof"), "uncalibrated_half")
    assert rule.method == UNCALIBRATED_HALF
    assert rule.calibration is not None
    served = rule.probabilities(predictions.logits) >= rule.threshold
    assert (served == (predictions.logits >= 0)).mean() > 0.999  # float ties at most
    assert rule.threshold == pytest.approx(1 / (1 + np.exp(-rule.calibration.bias)))
