"""The colour-counterfactual test: does the model answer the cell or its colour?

In C-NMC fold 1 the HEM cells happen to be darker than the ALL cells, a subject or batch effect
that subject-grouped cross-validation cannot see. Here each cell is re-coloured to the other
class's colour statistics (per-channel mean and standard deviation inside the cell) and scored
again: a model that relies on colour changes its answers and loses ROC AUC.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
from sklearn.metrics import roc_auc_score

from app.core.cell_colour import foreground_mask, match_cell_colour
from app.core.classifier import OnnxCellClassifier
from app.core.recipe import PreprocessConfig
from training.data.dataset_index import LABEL_ALL, LABEL_HEM, CellImage, read_image
from training.data.image_batches import batched, preprocess_batch, read_batches
from training.data.predictions import PerImageArrays

BATCH = 32


@dataclass(frozen=True)
class ColourStatistics:
    mean: np.ndarray  # (3,) inside-cell channel means, averaged over a class's cells
    std: np.ndarray  # (3,) inside-cell channel standard deviations, averaged likewise


def cell_statistics(rgb: np.ndarray, threshold: int) -> tuple[np.ndarray, np.ndarray]:
    pixels = rgb[foreground_mask(rgb, threshold)].astype(np.float64)
    if pixels.size == 0:
        return np.zeros(3), np.ones(3)
    return pixels.mean(axis=0), pixels.std(axis=0) + 1e-6


def class_statistics(images: Sequence[CellImage], threshold: int) -> dict[int, ColourStatistics]:
    by_class: dict[int, list[tuple[np.ndarray, np.ndarray]]] = {LABEL_ALL: [], LABEL_HEM: []}
    for image in images:
        by_class[image.label].append(cell_statistics(read_image(image.path), threshold))
    return {
        label: ColourStatistics(
            mean=np.mean([m for m, _ in rows], axis=0), std=np.mean([s for _, s in rows], axis=0)
        )
        for label, rows in by_class.items()
        if rows
    }


def recolour(rgb: np.ndarray, target: ColourStatistics, threshold: int) -> np.ndarray:
    """The cell with the target's channel mean and std (the serving recipe's own matcher)."""
    mask = foreground_mask(rgb, threshold)
    return match_cell_colour(rgb, mask, target.mean, target.std, threshold)


ProbabilityScorer = Callable[[np.ndarray], np.ndarray]
"""A batch of model inputs (N, 3, size, size) to the probability of ALL per image."""


@dataclass(frozen=True)
class CounterfactualResult:
    images: int
    roc_auc: float
    roc_auc_recoloured: float
    auc_drop: float
    mean_absolute_probability_change: float

    def as_json(self) -> dict[str, float | int]:
        return {
            "images": self.images,
            "roc_auc": round(self.roc_auc, 5),
            "roc_auc_recoloured": round(self.roc_auc_recoloured, 5),
            "auc_drop": round(self.auc_drop, 5),
            "mean_absolute_probability_change": round(self.mean_absolute_probability_change, 5),
        }


@dataclass(frozen=True)
class CounterfactualScores(PerImageArrays):
    """Each image's probability as it is and re-coloured; pooled across folds by `combine`."""

    labels: np.ndarray
    original: np.ndarray
    recoloured: np.ndarray

    def result(self) -> CounterfactualResult:
        auc_before = float(roc_auc_score(self.labels, self.original))
        auc_after = float(roc_auc_score(self.labels, self.recoloured))
        return CounterfactualResult(
            images=len(self.labels),
            roc_auc=auc_before,
            roc_auc_recoloured=auc_after,
            auc_drop=auc_before - auc_after,
            mean_absolute_probability_change=float(
                np.mean(np.abs(self.recoloured - self.original))
            ),
        )


def score_counterfactual(
    score: ProbabilityScorer,
    recipe: PreprocessConfig,
    images: Sequence[CellImage],
    reference: Sequence[CellImage],
) -> CounterfactualScores:
    """Score each image as it is and re-coloured to the other class of `reference` (for an
    honest test, cells the model was trained on and `images` it was not)."""
    threshold = recipe.foreground_threshold
    statistics = class_statistics(reference, threshold)
    original, recoloured = [], []
    batches = read_batches([image.path for image in images], BATCH)
    for chunk, rgbs in zip(batched(images, BATCH), batches, strict=True):
        swapped = [
            recolour(
                rgb, statistics[LABEL_HEM if image.label == LABEL_ALL else LABEL_ALL], threshold
            )
            for rgb, image in zip(rgbs, chunk, strict=True)
        ]
        original.append(score(preprocess_batch(rgbs, recipe)))
        recoloured.append(score(preprocess_batch(swapped, recipe)))
    return CounterfactualScores(
        labels=np.asarray([image.label for image in images]),
        original=np.concatenate(original),
        recoloured=np.concatenate(recoloured),
    )


def colour_counterfactual(
    classifier: OnnxCellClassifier,
    images: Sequence[CellImage],
    reference: Sequence[CellImage],
) -> CounterfactualResult:
    """The test on an exported model, scored as the server scores it."""
    return score_counterfactual(
        lambda batch: classifier.predict(batch).probabilities,
        classifier.manifest.preprocessing,
        images,
        reference,
    ).result()
