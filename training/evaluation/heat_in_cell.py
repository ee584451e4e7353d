"""Does the Grad-CAM map lie on the cell? Measured out of sample, for choosing models.

The server reports each map's share of heat inside the cell (`app.core.gradcam`); this scores
a cross-validation's fold models on their held-out subjects the same way, so that the bake-off
can weigh where a candidate's evidence lies next to its accuracy. The map is the textbook
autograd Grad-CAM on the same feature map the exported explain graph reads (the two agree to
a correlation of 0.99, tested in tests/training/release/test_export.py).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from app.core.cell_colour import foreground_mask
from app.core.gradcam import HEAT_ON_CELL_GOAL, upsample_gradcam
from app.core.recipe import PreprocessConfig, normalize_to_tensor, prepare_image
from training.data.dataset_index import CellImage
from training.data.image_batches import read_batches
from training.data.predictions import PerImageArrays
from training.fit.models import CellClassifier, autograd_gradcam

BATCH = 16


@dataclass(frozen=True)
class HeatScores(PerImageArrays):
    """Per image: the share of heat on the cell, and how much the ALL logit moves when the
    hottest quarter of the cell, or a random quarter, is flattened to the cell's mean colour.
    A map whose hot parts matter no more than random ones lies on the cell for nothing
    (the deletion check of Samek et al. 2017, kept inside the cell so that its size stays)."""

    fractions: np.ndarray
    hottest_quarter_logit_change: np.ndarray
    random_quarter_logit_change: np.ndarray


def score_heat(
    model: CellClassifier, recipe: PreprocessConfig, images: Sequence[CellImage], seed: int = 0
) -> HeatScores:
    model.eval()
    rng = np.random.default_rng(seed)
    fractions: list[float] = []
    hottest: list[np.ndarray] = []
    random: list[np.ndarray] = []
    for rgbs in read_batches([image.path for image in images], BATCH):
        crops = [prepare_image(rgb, recipe) for rgb in rgbs]
        batch = _tensor(crops, recipe)
        flattened_hot, flattened_random = [], []
        for crop, gradcam in zip(crops, autograd_gradcam(model, batch).numpy(), strict=True):
            heat = upsample_gradcam(gradcam, crop, recipe.foreground_threshold)
            fractions.append(np.nan if heat.heat_in_cell is None else heat.heat_in_cell)
            cell = np.flatnonzero(foreground_mask(crop, recipe.foreground_threshold))
            quarter = max(1, len(cell) // 4)
            hot = cell[np.argsort(heat.heat.ravel()[cell], kind="stable")[-quarter:]]
            flattened_hot.append(_flatten(crop, cell, hot))
            flattened_random.append(_flatten(crop, cell, rng.choice(cell, quarter, replace=False)))
        with torch.no_grad():
            logits = model(batch).numpy()
            hottest.append(model(_tensor(flattened_hot, recipe)).numpy() - logits)
            random.append(model(_tensor(flattened_random, recipe)).numpy() - logits)
    return HeatScores(
        fractions=np.asarray(fractions, dtype=np.float64),
        hottest_quarter_logit_change=np.concatenate(hottest),
        random_quarter_logit_change=np.concatenate(random),
    )


def heat_in_cell_fractions(
    model: CellClassifier, recipe: PreprocessConfig, images: Sequence[CellImage]
) -> np.ndarray:
    """Each image's share of Grad-CAM heat inside its cell; NaN where the map is all zero."""
    return score_heat(model, recipe, images).fractions


def _tensor(crops: Sequence[np.ndarray], recipe: PreprocessConfig) -> torch.Tensor:
    return torch.from_numpy(np.stack([normalize_to_tensor(c, recipe) for c in crops]))


def _flatten(crop: np.ndarray, cell: np.ndarray, chosen: np.ndarray) -> np.ndarray:
    """The crop with the chosen pixels (flat indices) set to the cell's mean colour."""
    pixels = crop.reshape(-1, 3).copy()
    if len(cell):
        pixels[chosen] = np.round(pixels[cell].mean(axis=0)).astype(np.uint8)
    return pixels.reshape(crop.shape)


def summarize(fractions: np.ndarray) -> dict[str, float | int | None]:
    """Mean share and the share of images reaching the goal, over the maps that have heat."""
    explained = fractions[~np.isnan(fractions)]
    if len(explained) == 0:
        return {"images": len(fractions), "images_explained": 0, "mean": None, "at_goal": None}
    return {
        "images": len(fractions),
        "images_explained": len(explained),
        "mean": round(float(explained.mean()), 5),
        "at_goal": round(float((explained >= HEAT_ON_CELL_GOAL).mean()), 5),
    }


def summarize_scores(scores: HeatScores) -> dict[str, float | int | None]:
    """`summarize` plus the deletion check's mean logit changes."""
    hottest, random = scores.hottest_quarter_logit_change, scores.random_quarter_logit_change
    return {
        **summarize(scores.fractions),
        "hottest_quarter_logit_change": round(float(hottest.mean()), 4),
        "random_quarter_logit_change": round(float(random.mean()), 4),
        "hottest_moves_more": round(float((np.abs(hottest) > np.abs(random)).mean()), 4),
    }
