"""What weighting people by population does: a linear head on frozen ImageNet features, trained
with each person and class weighing the same and the external people's weight scaled by a
factor (0: fold-1 people only; 1: every person alike; 3: external people count triple), each
scored out of fold on the same subject-grouped folds, per population.

Frozen features make the comparison cheap (the backbone runs once per cell) and fair (only the
weights change between rows); the CV's folds, the weighting and the report are the ones every
candidate uses (training/splits.py, training/trainer.py, training/population_report.py).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from app.core.preprocessing import PreprocessConfig
from training.dataset_index import EXTERNAL_FOLDS, EXTERNAL_PRELIM, CellImage
from training.image_batches import preprocessed_batches
from training.models import create_classifier
from training.population_report import PopulationReport, population_report
from training.splits import subject_grouped_folds
from training.trainer import subject_balanced_weights

REGULARISATION_C = 0.1
"""Inverse L2 strength on standardised features: fixed before the runs, never tuned on folds."""


def frozen_features(
    images: Sequence[CellImage],
    recipe: PreprocessConfig,
    arch: str,
    init_weights: Path | None,
    *,
    batch_size: int = 64,
) -> np.ndarray:
    """The backbone's pooled features of every cell, prepared by the served recipe."""
    model = create_classifier(arch, init_weights=init_weights).eval()
    parts = []
    with torch.inference_mode():
        for batch in preprocessed_batches([image.path for image in images], recipe, batch_size):
            parts.append(model.backbone(torch.from_numpy(batch)).numpy())
    return np.concatenate(parts)


def out_of_fold_probabilities(
    features: np.ndarray,
    images: Sequence[CellImage],
    *,
    folds: int,
    seed: int,
    external_factor: float,
) -> np.ndarray:
    """Each cell scored by the head trained on the other folds' people."""
    position = {image.path: index for index, image in enumerate(images)}
    factors = {EXTERNAL_FOLDS: external_factor, EXTERNAL_PRELIM: external_factor}
    scores = np.full(len(images), np.nan)
    for split in subject_grouped_folds(images, folds, seed):
        train = [position[image.path] for image in split.train]
        held_out = [position[image.path] for image in split.validation]
        weights = np.asarray(subject_balanced_weights(split.train, factors)) * len(train)
        kept = weights > 0
        head = make_pipeline(
            StandardScaler(), LogisticRegression(C=REGULARISATION_C, max_iter=5000)
        )
        train_index = np.asarray(train)[kept]
        head.fit(
            features[train_index],
            [images[i].label for i in train_index],
            logisticregression__sample_weight=weights[kept],
        )
        scores[held_out] = head.predict_proba(features[held_out])[:, 1]
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
