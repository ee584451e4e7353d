"""A morphology model: what a haematologist looks at, measured, then a linear classifier.

Nucleus and cell shape, the nucleus-to-cell ratio and chromatin texture, computed with
scikit-image on each cell after its colour is standardised (so brightness says nothing) and
without its absolute size (the fold-1 cue that fails on new patients). A candidate beside the
networks judged on unseen patients: if shape and texture carried over to new patients, a
model this simple would show it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from skimage.feature import graycomatrix, graycoprops, local_binary_pattern
from skimage.filters import threshold_otsu
from skimage.measure import label, regionprops
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler

from app.core.cell_colour import foreground_mask, standardize_cell_colour
from training.data.dataset_index import CellImage, read_image
from training.data.splits import subject_grouped_folds

FOREGROUND_THRESHOLD = 15
LBP_POINTS = 8
FEATURE_NAMES = (
    "cell_eccentricity",
    "cell_solidity",
    "cell_circularity",
    "nucleus_to_cell_ratio",
    "nucleus_eccentricity",
    "nucleus_solidity",
    "nucleus_parts",
    "glcm_contrast",
    "glcm_homogeneity",
    "glcm_energy",
    "glcm_correlation",
    *(f"lbp_{i}" for i in range(LBP_POINTS + 2)),
)


def _largest_region(mask: np.ndarray) -> Any | None:
    """The largest connected region (scikit-image's RegionProperties, which it leaves
    untyped), or None for an empty mask."""
    regions = regionprops(label(mask))
    return max(regions, key=lambda r: r.area) if regions else None


def cell_features(rgb: np.ndarray) -> np.ndarray:
    """Size-free shape, nucleus and texture features of the one cell in an image."""
    mask = foreground_mask(rgb, FOREGROUND_THRESHOLD)
    features = np.zeros(len(FEATURE_NAMES))
    cell = _largest_region(mask)
    if cell is None:
        return features
    standardised = standardize_cell_colour(rgb, mask, FOREGROUND_THRESHOLD)
    grey = standardised.mean(axis=2)
    inside = grey[mask]
    nucleus = mask & (grey < threshold_otsu(inside)) if inside.size > 1 else mask
    nucleus_region = _largest_region(nucleus)
    circularity = 4 * np.pi * cell.area / max(cell.perimeter, 1.0) ** 2
    top, left, bottom, right = cell.bbox
    crop = np.where(mask, grey, 0)[top:bottom, left:right].astype(np.uint8)
    matrix = graycomatrix(crop, [1, 2], [0, np.pi / 4, np.pi / 2, 3 * np.pi / 4], 256)
    matrix[0, :, :, :] = 0  # the surround is not texture
    matrix[:, 0, :, :] = 0
    lbp = local_binary_pattern(crop, LBP_POINTS, 1, method="uniform")
    histogram = np.bincount(
        lbp[mask[top:bottom, left:right]].astype(int), minlength=LBP_POINTS + 2
    )[: LBP_POINTS + 2]
    features[:11] = [
        cell.eccentricity,
        cell.solidity,
        circularity,
        nucleus.sum() / cell.area,
        nucleus_region.eccentricity if nucleus_region else 0.0,
        nucleus_region.solidity if nucleus_region else 0.0,
        float(sum(r.area >= 0.01 * cell.area for r in regionprops(label(nucleus)))),
        *(
            float(graycoprops(matrix, name).mean())
            for name in ("contrast", "homogeneity", "energy", "correlation")
        ),
    ]
    features[11:] = histogram / max(histogram.sum(), 1)
    return features


def feature_matrix(images: Sequence[CellImage]) -> np.ndarray:
    return np.stack([cell_features(read_image(image.path)) for image in images])


def morphology_classifier() -> Pipeline:
    """Standardised features, a class-balanced L2 logistic regression."""
    return make_pipeline(
        StandardScaler(), LogisticRegression(C=0.1, class_weight="balanced", max_iter=2000)
    )


def out_of_fold_probabilities(
    images: Sequence[CellImage],
    features: np.ndarray,
    folds: int,
    seed: int = 0,
    *,
    person_balanced: bool = False,
) -> np.ndarray:
    """Each cell scored by the classifier fitted without its subject's fold; with
    `person_balanced`, each person and class weighs the same in the fit."""
    from training.fit.training_data import subject_balanced_weights

    probabilities = np.zeros(len(images))
    positions = {image.path: i for i, image in enumerate(images)}
    labels = np.asarray([image.label for image in images])
    for split in subject_grouped_folds(images, folds, seed):
        train = [positions[image.path] for image in split.train]
        held = [positions[image.path] for image in split.validation]
        fit: dict[str, np.ndarray] = {}
        if person_balanced:
            weights = np.asarray(subject_balanced_weights(split.train)) * len(train)
            fit["logisticregression__sample_weight"] = weights
        model = morphology_classifier().fit(features[train], labels[train], **fit)
        probabilities[held] = model.predict_proba(features[held])[:, 1]
    return probabilities
