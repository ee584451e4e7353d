"""The recipe's earlier crops, each cut from the whole frame: the reference the serving recipe
(app/core/recipe.py, which finds one window and converts only what it keeps) is tested and
measured against. Research code for tests and benchmarks; nothing serves it.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from app.core.cell_colour import Foreground, foreground_of_mask
from app.core.recipe import (
    ContrastMethod,
    CropMethod,
    PreprocessConfig,
    _bbox_window,
    _equalized_lab,
    center_crop,
    normalize_to_tensor,
    rescale_for_display,
    run_recipe,
    square_window_crop,
)


@dataclass(frozen=True)
class PreprocessedViews:
    """The model input plus images a person can look at (never fed to the model)."""

    tensor: np.ndarray
    model_input: np.ndarray
    enhanced_view: np.ndarray
    cropped_view: np.ndarray


def _centroid(mask: np.ndarray) -> tuple[int, int] | None:
    foreground = foreground_of_mask(mask)
    return None if foreground.area == 0 else foreground.centroid()


def centroid_window_crop(image: np.ndarray, mask: np.ndarray, size: int) -> np.ndarray:
    """Centre a fixed window on the cell, so the cell keeps its size in pixels."""
    centre = _centroid(mask)
    if centre is None:
        return center_crop(image, size)
    return square_window_crop(image, centre, size)


def foreground_bbox_crop(image: np.ndarray, mask: np.ndarray, margin: float) -> np.ndarray:
    """Square bounding box of the cell plus a margin; the later resize erases its size."""
    foreground = foreground_of_mask(mask)
    if foreground.area == 0:
        side = max(image.shape[:2])
        return center_crop(image, side)
    centre, side = _bbox_window(foreground, margin)
    return square_window_crop(image, centre, side)


def recipe_crop(image: np.ndarray, mask: np.ndarray, config: PreprocessConfig) -> np.ndarray:
    """The crop the recipe's CropMethod names (one of the three crops above)."""
    if config.crop is CropMethod.CENTER:
        return center_crop(image, config.crop_size)
    if config.crop is CropMethod.CELL:
        return centroid_window_crop(image, mask, config.crop_size)
    return foreground_bbox_crop(image, mask, config.bbox_margin)


def enhance_contrast(rgb: np.ndarray, config: PreprocessConfig) -> np.ndarray:
    """Equalise lightness only (L of LAB) so that stain hues are left alone."""
    if config.contrast is ContrastMethod.NONE:
        return rgb
    return cv2.cvtColor(_equalized_lab(rgb, config), cv2.COLOR_LAB2RGB)


def preprocess_with_views(
    rgb: np.ndarray, config: PreprocessConfig, foreground: Foreground | None = None
) -> PreprocessedViews:
    output = run_recipe(rgb, config, foreground, whole_frame=True)
    enhanced = output.enhanced if output.enhanced is not None else rgb
    return PreprocessedViews(
        tensor=normalize_to_tensor(output.prepared, config),
        model_input=output.prepared,
        enhanced_view=rescale_for_display(enhanced),
        cropped_view=rescale_for_display(output.prepared),
    )
