"""Calibration fitted on out-of-sample logits, and the calibration error around it.

Temperature scaling plus a bias (Platt scaling): two parameters cannot overfit much and keep
the ranking (and so the ROC AUC) unchanged. The bias is needed because class-balanced training
shifts all logits by the log of the class ratio. Fitted only on predictions for subjects the
predicting model never saw.
"""

from __future__ import annotations

import numpy as np
from scipy.optimize import minimize, minimize_scalar

from app.core.classifier import sigmoid
from app.core.manifest import Calibration, ReliabilityBin

BINS = 10


def fit_temperature(logits: np.ndarray, labels: np.ndarray) -> float:
    """The temperature that minimises the negative log-likelihood of the labels."""
    y = np.asarray(labels, dtype=float)
    z = np.asarray(logits, dtype=float)

    def negative_log_likelihood(log_temperature: float) -> float:
        scaled = z / np.exp(log_temperature)
        return float(np.mean(np.logaddexp(0.0, scaled) - y * scaled))

    result = minimize_scalar(negative_log_likelihood, bounds=(-4.0, 4.0), method="bounded")
    return float(np.exp(result.x))


def fit_temperature_and_bias(logits: np.ndarray, labels: np.ndarray) -> tuple[float, float]:
    """(temperature, bias) minimising the negative log-likelihood of sigmoid(z / T + b)."""
    y = np.asarray(labels, dtype=float)
    z = np.asarray(logits, dtype=float)

    def negative_log_likelihood(parameters: np.ndarray) -> float:
        scaled = z * np.exp(parameters[0]) + parameters[1]
        return float(np.mean(np.logaddexp(0.0, scaled) - y * scaled))

    result = minimize(negative_log_likelihood, np.zeros(2), method="Nelder-Mead")
    log_inverse_temperature, bias = result.x
    return float(np.exp(-log_inverse_temperature)), float(bias)


def reliability(
    probabilities: np.ndarray, labels: np.ndarray
) -> tuple[float, list[ReliabilityBin]]:
    """Expected calibration error over equal-width bins, and the bins themselves."""
    p = np.asarray(probabilities, dtype=float)
    y = np.asarray(labels, dtype=float)
    edges = np.linspace(0.0, 1.0, BINS + 1)
    index = np.clip(np.digitize(p, edges[1:-1]), 0, BINS - 1)
    bins, error = [], 0.0
    for b in range(BINS):
        members = index == b
        count = int(members.sum())
        mean_p: float | None = None
        observed: float | None = None
        if count:
            mean_p, observed = float(p[members].mean()), float(y[members].mean())
            error += count / len(p) * abs(mean_p - observed)
        bins.append(
            ReliabilityBin(
                lower=float(edges[b]),
                upper=float(edges[b + 1]),
                count=count,
                mean_predicted=mean_p,
                observed_fraction=observed,
            )
        )
    return float(error), bins


def _scaling(temperature: float, bias: float = 0.0) -> Calibration:
    """Just the served formula (`Calibration.apply`), before the card's other fields exist."""
    return Calibration.model_construct(
        temperature=temperature,
        bias=bias,
        fitted_on="",
        ece_before=0.0,
        ece_after=0.0,
        reliability_before=[],
        reliability_after=[],
    )


def calibrate(logits: np.ndarray, labels: np.ndarray, fitted_on: str) -> Calibration:
    z = np.asarray(logits, dtype=float)
    temperature, bias = fit_temperature_and_bias(z, labels)
    ece_before, bins_before = reliability(sigmoid(z), labels)
    ece_after, bins_after = reliability(sigmoid(_scaling(temperature, bias).apply(z)), labels)
    temperature_only = _scaling(fit_temperature(z, labels))
    ece_temperature_only, _ = reliability(sigmoid(temperature_only.apply(z)), labels)
    return Calibration(
        temperature=temperature,
        bias=bias,
        fitted_on=fitted_on,
        ece_temperature_only=ece_temperature_only,
        ece_before=ece_before,
        ece_after=ece_after,
        reliability_before=bins_before,
        reliability_after=bins_after,
    )
