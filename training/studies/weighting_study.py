"""What weighting people by population does: a linear head on frozen ImageNet features, trained
with each person and class weighing the same and the external people's weight scaled by a
factor (0: fold-1 people only; 1: every person alike; 3: external people count triple), each
scored out of fold on the same subject-grouped folds, per population.

Frozen features make the comparison cheap (the backbone runs once per cell) and fair (only the
weights change between rows); the head, its folds, the weighting and the report are the ones
every candidate uses (training/fit/linear_head.py, training/evaluation/population_report.py).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from training.data.dataset_index import EXTERNAL_FOLDS, EXTERNAL_PRELIM, CellImage
from training.evaluation.population_report import PopulationReport, population_report
from training.fit.linear_head import out_of_fold


def out_of_fold_probabilities(
    features: np.ndarray,
    images: Sequence[CellImage],
    *,
    folds: int,
    seed: int,
    external_factor: float,
) -> np.ndarray:
    """Each cell scored by the head trained on the other folds' people, in `images`' order."""
    factors = {EXTERNAL_FOLDS: external_factor, EXTERNAL_PRELIM: external_factor}
    position = {image.path: index for index, image in enumerate(images)}
    scores = np.full(len(images), np.nan)
    for part in out_of_fold(features, images, folds=folds, seed=seed, factors=factors):
        predictions = part.predictions
        scores[[position[image.path] for image in predictions.images]] = predictions.probabilities
    return scores


def weighting_reports(
    features: np.ndarray,
    images: Sequence[CellImage],
    external_factors: Sequence[float],
    *,
    folds: int = 5,
    seed: int = 0,
    resamples: int = 2000,
) -> list[PopulationReport]:
    reports = []
    for factor in external_factors:
        scores = out_of_fold_probabilities(
            features, images, folds=folds, seed=seed, external_factor=factor
        )
        reports.append(
            population_report(
                f"frozen features + linear head, external people weighted x{factor:g}",
                "out-of-fold",
                images,
                scores,
                0.5,
                resamples=resamples,
                seed=seed,
            )
        )
    return reports
