"""Grad-CAM maps over the model's input crop, and how much of the heat lies on the cell (a map
that lights up the background explains nothing). Rendering them for people is
app/inference/display_images.py's job."""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from app.core.cell_colour import foreground_mask

HEAT_ON_CELL_GOAL = 0.9
"""A map "lies on the cell" when at least this share of its heat is inside the cell's mask:
the bar every shipped model is checked against (docs/performance.md)."""


@dataclass(frozen=True)
class HeatMap:
    heat: np.ndarray  # (S, S) in [0, 1]
    heat_in_cell: float | None

    @property
    def on_cell(self) -> bool | None:
        return None if self.heat_in_cell is None else self.heat_in_cell >= HEAT_ON_CELL_GOAL


def upsample_gradcam(gradcam: np.ndarray, model_input: np.ndarray, threshold: int) -> HeatMap:
    size = model_input.shape[0]
    # Bilinear: the cubic flag used to sit in the `dst` slot, so every map and every card's heat
    # figure so far was upsampled bilinearly; named now, the maps stay what was measured.
    upsampled = cv2.resize(gradcam.astype(np.float32), (size, size), interpolation=cv2.INTER_LINEAR)
    heat = np.clip(upsampled, 0, None)
    total = float(heat.sum())
    if total <= 0.0:
        return HeatMap(heat=np.zeros((size, size), np.float32), heat_in_cell=None)
    inside = foreground_mask(model_input, threshold)
    return HeatMap(heat=heat / heat.max(), heat_in_cell=float(heat[inside].sum() / total))
