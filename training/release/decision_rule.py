"""The served decision rule: a calibration and a threshold, chosen on held-out predictions only.

Held out means subjects the predicting model never saw: a cross-validation's out-of-fold
predictions when there is one, else the run's own validation subjects. Without either, the
rule is the uncalibrated default 0.5. Torch-free.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

from app.core.classifier import sigmoid
from app.core.manifest import Calibration, ThresholdChoice
from training.data.predictions import Predictions
from training.fit.artifacts import CvDir, RunDir
from training.metrics.classification_metrics import best_balanced_accuracy_threshold
from training.release.calibration import calibrate

DEFAULT_THRESHOLD = 0.5
BEST_BALANCED_ACCURACY = "best balanced accuracy (Youden's J)"
UNCALIBRATED_HALF = (
    "where the uncalibrated probability is 0.5 (the model trained class-balanced, so this "
    "point is fitted to nothing)"
)
ThresholdRule = Literal["best_balanced_accuracy", "uncalibrated_half"]
NO_VALIDATION_DATA = "default 0.5: no validation data was given"


@dataclass(frozen=True)
class HeldOut:
    """Held-out predictions, and which they are in the card's words."""

    predictions: Predictions
    description: str


def held_out_predictions(run: RunDir, cv: CvDir | None) -> HeldOut | None:
    """The cross-validation's out-of-fold predictions, else the run's validation subjects'."""
    if cv is not None:
        # The folder's name, never its path: cards and answers carry no local paths.
        return HeldOut(
            cv.read_out_of_fold(), f"out-of-fold predictions of the cross-validation {cv.path.name}"
        )
    if run.has_validation_predictions():
        return HeldOut(run.read_validation_predictions(), "the run's held-out subjects")
    return None


@dataclass(frozen=True)
class DecisionRule:
    """Logit -> served probability (through the calibration, if any) -> ALL above threshold."""

    threshold: float
    method: str
    """How the threshold was chosen."""
    chosen_on: str | None
    """Which predictions it was chosen on; None when there were none."""
    calibration: Calibration | None = None

    def probabilities(self, logits: np.ndarray) -> np.ndarray:
        calibrated = logits if self.calibration is None else self.calibration.apply(logits)
        return sigmoid(calibrated)

    def threshold_choice(self) -> ThresholdChoice:
        """The card's account of the threshold."""
        if self.chosen_on is None:
            return ThresholdChoice(value=self.threshold, source=self.method)
        source = f"{self.method} on {self.chosen_on}, calibrated probabilities"
        return ThresholdChoice(value=self.threshold, source=source)


DEFAULT_RULE = DecisionRule(threshold=DEFAULT_THRESHOLD, method=NO_VALIDATION_DATA, chosen_on=None)


def choose_decision_rule(
    held_out: HeldOut | None, threshold_rule: ThresholdRule = "best_balanced_accuracy"
) -> DecisionRule:
    """Calibrate the held-out logits, then take the threshold on the calibrated probabilities
    (what the server compares with it): the best balanced accuracy's, or the calibrated image
    of the uncalibrated 0.5; without held-out predictions, the default."""
    if held_out is None:
        return DEFAULT_RULE
    predictions = held_out.predictions
    calibration = calibrate(predictions.logits, predictions.labels, fitted_on=held_out.description)
    if threshold_rule == "uncalibrated_half":
        threshold = float(sigmoid(calibration.apply(np.zeros(1)))[0])
        method = UNCALIBRATED_HALF
    else:
        calibrated = sigmoid(calibration.apply(predictions.logits))
        threshold = best_balanced_accuracy_threshold(predictions.labels, calibrated)
        method = BEST_BALANCED_ACCURACY
    return DecisionRule(
        threshold=threshold,
        method=method,
        chosen_on=held_out.description,
        calibration=calibration,
    )
