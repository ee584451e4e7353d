"""Warnings about the input itself: a prediction is only meaningful for one segmented cell that
looks like the cells the model was trained on.

The same measurements (`measure_cell`) describe the training images at export, where their
spread becomes the model's `QualityReference`, and each upload at serving, where values
outside that spread become warnings. Warnings never refuse an answer; their codes are stable.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum

import cv2
import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from app.core.cell_colour import Foreground, find_foreground

MIN_FOREGROUND_FRACTION = 0.002
MAX_FOREGROUND_FRACTION = 0.9
SECOND_OBJECT_SHARE = 0.05  # of the largest object's area
REFERENCE_PERCENTILES = (0.5, 99.5)


class WarningCode(StrEnum):
    """Stable identifiers a client can act on; named in the OpenAPI schema as an enum."""

    NO_CELL = "no_cell"
    NO_BACKGROUND = "no_background"
    MULTIPLE_OBJECTS = "multiple_objects"
    TOUCHES_BORDER = "touches_border"
    TOO_SMALL = "too_small"
    TOO_LARGE = "too_large"
    BLURRY = "blurry"
    UNUSUAL_STAIN = "unusual_stain"
    UNCERTAIN = "uncertain"


DEFAULT_UNCERTAINTY_BAND = 0.1
"""|probability - threshold| below which an answer is indeterminate, unless the card sets one."""


class QualityWarning(BaseModel):
    code: WarningCode = Field(description="Stable identifier, e.g. no_background.")
    message: str


class QualityReference(BaseModel):
    """The training images' spread of each measurement, stored in the model manifest."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    area_range: tuple[float, float] = Field(description="Cell area in pixels, 0.5th-99.5th pct.")
    min_sharpness: float = Field(description="0.5th percentile of the Laplacian variance.")
    stain_mean: tuple[float, float, float] = Field(description="Mean RGB inside training cells.")
    stain_inverse_covariance: list[list[float]]
    max_stain_distance: float = Field(description="99.5th percentile Mahalanobis distance.")
    uncertainty_band: float = Field(
        DEFAULT_UNCERTAINTY_BAND, ge=0.0, le=0.5, description="|p - threshold| below it."
    )


@dataclass(frozen=True)
class CellMeasurements:
    foreground_fraction: float
    area: float
    objects: int
    touches_border: bool
    sharpness: float
    stain_rgb: tuple[float, float, float]


ERODE_KERNEL = np.ones((5, 5), np.uint8)
BOX_MARGIN = 2
"""Pixels kept around the cell's box: the 5 x 5 erosion and the 3 x 3 Laplacian of a cell pixel
then see the same neighbours as over the whole frame."""


def measure_cell(rgb: np.ndarray, threshold: int) -> CellMeasurements:
    """Shape, focus and stain of the cell in a decoded image, as acquired (not enhanced)."""
    return measure_foreground(rgb, find_foreground(rgb, threshold))


def measure_foreground(rgb: np.ndarray, foreground: Foreground) -> CellMeasurements:
    """`measure_cell` with the mask found once and shared with the recipe.

    Every measurement is taken over the cell's bounding box widened by `BOX_MARGIN`, which
    holds every cell pixel and every neighbour the filters read, so each number equals the
    one computed over the whole frame."""
    height, width = foreground.frame_shape
    if foreground.area == 0:
        return CellMeasurements(
            foreground_fraction=0.0,
            area=0.0,
            objects=0,
            touches_border=False,
            sharpness=0.0,
            stain_rgb=(0.0, 0.0, 0.0),
        )
    top, left = max(foreground.top - BOX_MARGIN, 0), max(foreground.left - BOX_MARGIN, 0)
    bottom = min(foreground.bottom + BOX_MARGIN, height)
    right = min(foreground.right + BOX_MARGIN, width)
    mask = np.zeros((bottom - top, right - left), dtype=np.uint8)
    inner_top, inner_left = foreground.top - top, foreground.left - left
    mask[
        inner_top : inner_top + foreground.box_mask.shape[0],
        inner_left : inner_left + foreground.box_mask.shape[1],
    ] = foreground.box_mask
    _count, _, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=8)
    areas = stats[1:, cv2.CC_STAT_AREA]
    largest = float(areas.max())
    objects = int((areas >= SECOND_OBJECT_SHARE * largest).sum())
    touches = (
        foreground.top == 0
        or foreground.left == 0
        or foreground.bottom == height
        or foreground.right == width
    )
    region_rgb = rgb[top:bottom, left:right]
    inside = mask > 0
    eroded = cv2.erode(mask, ERODE_KERNEL) > 0
    gray = cv2.cvtColor(region_rgb, cv2.COLOR_RGB2GRAY)
    laplacian = cv2.Laplacian(gray, cv2.CV_64F)
    sharpness = float(laplacian[eroded if eroded.any() else inside].var())
    # Sums of 8-bit values are exact in float64 in any order, so OpenCV's sums divided by
    # the count equal numpy's mean of the masked pixels.
    sums = cv2.sumElems(cv2.bitwise_and(region_rgb, region_rgb, mask=mask))
    stain = [sums[channel] / foreground.area for channel in range(3)]
    return CellMeasurements(
        foreground_fraction=foreground.area / (height * width),
        area=float(foreground.area),
        objects=objects,
        touches_border=bool(touches),
        sharpness=sharpness,
        stain_rgb=(float(stain[0]), float(stain[1]), float(stain[2])),
    )


def build_reference(measurements: Iterable[CellMeasurements]) -> QualityReference:
    """The spread of training cells, from which serving decides what is unusual."""
    rows = [m for m in measurements if m.area > 0]
    if len(rows) < 2:
        raise ValueError("need at least two images with a cell to build a quality reference")
    low, high = REFERENCE_PERCENTILES
    areas = np.asarray([m.area for m in rows])
    sharpness = np.asarray([m.sharpness for m in rows])
    stains = np.asarray([m.stain_rgb for m in rows])
    mean = stains.mean(axis=0)
    covariance = np.cov(stains, rowvar=False) + np.eye(3) * 1e-6
    inverse = np.linalg.inv(covariance)
    distances = np.sqrt(np.einsum("ij,jk,ik->i", stains - mean, inverse, stains - mean))
    return QualityReference(
        area_range=(float(np.percentile(areas, low)), float(np.percentile(areas, high))),
        min_sharpness=float(np.percentile(sharpness, low)),
        stain_mean=(float(mean[0]), float(mean[1]), float(mean[2])),
        stain_inverse_covariance=inverse.tolist(),
        max_stain_distance=float(np.percentile(distances, high)),
    )


def stain_distance(measured: CellMeasurements, reference: QualityReference) -> float:
    difference = np.asarray(measured.stain_rgb) - np.asarray(reference.stain_mean)
    inverse = np.asarray(reference.stain_inverse_covariance)
    return float(np.sqrt(difference @ inverse @ difference))


def _warning(code: WarningCode, message: str) -> QualityWarning:
    return QualityWarning(code=code, message=message)


def input_warnings(
    measured: CellMeasurements, reference: QualityReference | None
) -> list[QualityWarning]:
    """What about this image makes the answer less trustworthy; empty for a typical cell."""
    if measured.foreground_fraction < MIN_FOREGROUND_FRACTION:
        return [
            _warning(
                WarningCode.NO_CELL, "Almost no pixel is brighter than the background: no cell."
            )
        ]
    warnings: list[QualityWarning] = []
    if measured.foreground_fraction > MAX_FOREGROUND_FRACTION:
        warnings.append(
            _warning(
                WarningCode.NO_BACKGROUND,
                "No black surround: the model expects one segmented cell on black, as in "
                "C-NMC; this looks like an unsegmented image.",
            )
        )
    if measured.objects > 1:
        warnings.append(
            _warning(
                WarningCode.MULTIPLE_OBJECTS,
                f"{measured.objects} separate objects; expected one cell.",
            )
        )
    if measured.touches_border:
        warnings.append(
            _warning(
                WarningCode.TOUCHES_BORDER, "The cell touches the image border and may be cut off."
            )
        )
    if reference is None:
        return warnings
    low, high = reference.area_range
    if measured.area < low:
        warnings.append(
            _warning(
                WarningCode.TOO_SMALL,
                f"Cell area {measured.area:.0f} px is below the training range.",
            )
        )
    elif measured.area > high:
        warnings.append(
            _warning(
                WarningCode.TOO_LARGE,
                f"Cell area {measured.area:.0f} px is above the training range.",
            )
        )
    if measured.sharpness < reference.min_sharpness:
        warnings.append(
            _warning(WarningCode.BLURRY, "The cell is less sharp than almost all training cells.")
        )
    if stain_distance(measured, reference) > reference.max_stain_distance:
        warnings.append(
            _warning(
                WarningCode.UNUSUAL_STAIN,
                "The cell's colour is far from the training cells' stain: another stain, "
                "scanner or white balance can mislead the model.",
            )
        )
    return warnings


def uncertainty_warning(
    probability: float, threshold: float, reference: QualityReference | None
) -> list[QualityWarning]:
    band = reference.uncertainty_band if reference is not None else DEFAULT_UNCERTAINTY_BAND
    if abs(probability - threshold) < band:
        return [
            _warning(
                WarningCode.UNCERTAIN,
                f"The probability is within {band:.2f} of the decision threshold: "
                "the model cannot tell with confidence.",
            )
        ]
    return []
