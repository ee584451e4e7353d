import numpy as np
import pytest

from app.core.classifier import sigmoid
from training.release.calibration import (
    calibrate,
    fit_temperature,
    fit_temperature_and_bias,
    reliability,
)


def simulated(n: int = 4000, scale: float = 3.0, shift: float = -0.8, seed: int = 0):
    """Labels drawn from sigmoid(true logit); the model reports scale * true + shift."""
    rng = np.random.default_rng(seed)
    true_logits = rng.normal(0.5, 2.0, n)
    labels = (rng.random(n) < sigmoid(true_logits)).astype(int)
    return scale * true_logits + shift, labels


def test_temperature_and_bias_undo_a_scaled_and_shifted_logit():
    logits, labels = simulated()
    temperature, bias = fit_temperature_and_bias(logits, labels)
    assert temperature == pytest.approx(3.0, rel=0.1)
    assert bias == pytest.approx(0.8 / 3.0, abs=0.1)


def test_calibration_lowers_the_error_and_keeps_the_bins():
    logits, labels = simulated()
    card = calibrate(logits, labels, fitted_on="simulation")
    assert card.ece_after < 0.03 < card.ece_before
    assert card.ece_after <= card.ece_temperature_only
    assert card.ece_after == reliability(sigmoid(card.apply(logits)), labels)[0]
    assert sum(b.count for b in card.reliability_after) == len(labels)


def test_reliability_of_perfect_probabilities_is_small():
    rng = np.random.default_rng(1)
    probabilities = rng.random(20000)
    labels = (rng.random(20000) < probabilities).astype(int)
    error, bins = reliability(probabilities, labels)
    assert error < 0.02
    assert len(bins) == 10


def test_temperature_alone_recovers_a_pure_scale():
    logits, labels = simulated(scale=2.0, shift=0.0)
    assert fit_temperature(logits, labels) == pytest.approx(2.0, rel=0.1)
