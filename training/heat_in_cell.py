"""Does the Grad-CAM map lie on the cell? Measured out of sample, for choosing models.

The server reports each map's share of heat inside the cell (`app.explanations`); this scores
a cross-validation's fold models on their held-out subjects the same way, so that the bake-off
can weigh where a candidate's evidence lies next to its accuracy. The map is the textbook
autograd Grad-CAM on the same feature map the exported explain graph reads (the two agree to
a correlation of 0.99, tested in tests/training/test_export.py).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from app.explanations import HEAT_ON_CELL_GOAL, upsample_gradcam
from app.preprocessing import PreprocessConfig, normalize_to_tensor, prepare_image
from training.dataset_index import CellImage, read_image
from training.models import CellClassifier, autograd_gradcam

GOAL = HEAT_ON_CELL_GOAL
BATCH = 16


def heat_in_cell_fractions(
    model: CellClassifier, recipe: PreprocessConfig, images: Sequence[CellImage]
) -> np.ndarray:
    """Each image's share of Grad-CAM heat inside its cell; NaN where the map is all zero."""
    model.eval()
    fractions: list[float] = []
    for start in range(0, len(images), BATCH):
        crops = [prepare_image(read_image(i.path), recipe) for i in images[start : start + BATCH]]
        batch = torch.from_numpy(np.stack([normalize_to_tensor(c, recipe) for c in crops]))
        for crop, gradcam in zip(crops, autograd_gradcam(model, batch).numpy(), strict=True):
            share = upsample_gradcam(gradcam, crop, recipe.foreground_threshold).heat_in_cell
            fractions.append(np.nan if share is None else share)
    return np.asarray(fractions, dtype=np.float64)


def summarize(fractions: np.ndarray) -> dict[str, float | int | None]:
    """Mean share and the share of images reaching the goal, over the maps that have heat."""
    explained = fractions[~np.isnan(fractions)]
    if len(explained) == 0:
        return {"images": len(fractions), "images_explained": 0, "mean": None, "at_goal": None}
    return {
        "images": len(fractions),
        "images_explained": len(explained),
        "mean": round(float(explained.mean()), 5),
        "at_goal": round(float((explained >= GOAL).mean()), 5),
    }
