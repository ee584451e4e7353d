"""Blending scorers without fitting anything: each scorer's logit measured from its own
threshold, averaged with equal weights, so the blend says ALL where the scorers' margins
together lean that way. No weight or threshold is chosen on the cells it is measured on."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from app.core.classifier import logit
from training.evaluation.scorers import Scores

EPSILON = 1e-6
BLEND_THRESHOLD = 0.5
"""The mean of threshold-centred logits is 0 where the scorers, on average, sit on their own
thresholds: a probability of 0.5."""


def threshold_centred_blend(name: str, scorers: Sequence[Scores]) -> Scores:
    """Equal-weight mean of `logit(p) - logit(threshold)` over probability scorers."""
    if len(scorers) < 2:
        raise ValueError("a blend needs at least two scorers")
    margins = []
    for scores in scorers:
        if scores.kind != "model" or scores.threshold is None:
            raise ValueError(f"{scores.name} is not a thresholded probability")
        if not 0 < scores.threshold < 1:
            raise ValueError(f"{scores.name}: a threshold of {scores.threshold} has no logit")
        margins.append(logit(scores.values, EPSILON) - logit(scores.threshold, EPSILON))
    blended = 1 / (1 + np.exp(-np.mean(margins, axis=0)))
    return Scores(name, blended, BLEND_THRESHOLD)
