"""The cell's pixels (its mask and bounding box, found once per image) and the bit-exact
colour standardisation of the cell.

Masked statistics are taken over the bounding box only, and the per-pixel float32 arithmetic
once per 8-bit level: the same numbers, bit for bit, as over the whole frame pixel by pixel
(tests/app/core/test_recipe.py checks both against the plain numpy definitions).
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from app.core.image_decoding import RGB_CHANNELS

CELL_COLOUR_MEAN = 128.0
CELL_COLOUR_STD = 32.0  # low enough that few cell pixels clip at the dark rim (docs/performance.md)


@dataclass(frozen=True)
class Foreground:
    """The cell's pixels, found once per image and shared by the recipe and the quality checks.

    Everything outside the bounding box is background, so every masked statistic is taken over
    the box only: the same pixels in the same (row-major) order as over the whole frame, hence
    the same numbers, bit for bit.
    """

    frame_shape: tuple[int, int]
    top: int
    left: int
    bottom: int
    right: int
    box_mask: np.ndarray
    """uint8, 255 on the cell, over [top:bottom, left:right]."""
    area: int

    def box(self, image: np.ndarray) -> np.ndarray:
        return image[self.top : self.bottom, self.left : self.right]

    def centroid(self) -> tuple[int, int]:
        """Rounded mean row and column of the cell's pixels; exact integer sums, so it equals
        `round(rows.mean())` of `np.nonzero` to the last bit."""
        counts = self.box_mask > 0
        row_counts = np.count_nonzero(counts, axis=1).astype(np.int64)
        col_counts = np.count_nonzero(counts, axis=0).astype(np.int64)
        rows = np.arange(self.top, self.bottom, dtype=np.int64)
        cols = np.arange(self.left, self.right, dtype=np.int64)
        row_sum = int(rows @ row_counts)
        col_sum = int(cols @ col_counts)
        return round(row_sum / self.area), round(col_sum / self.area)


def is_rgb_uint8(image: np.ndarray) -> bool:
    return image.dtype == np.uint8 and image.ndim == 3 and image.shape[2] == RGB_CHANNELS


def _cell_pixels_uint8(rgb: np.ndarray, threshold: int) -> np.ndarray:
    """255 where the largest channel exceeds the threshold: one SIMD pass instead of a
    strided max over the channel axis."""
    if is_rgb_uint8(rgb):
        background = cv2.inRange(rgb, (0, 0, 0), (threshold, threshold, threshold))
        return cv2.bitwise_not(background)
    return np.asarray((rgb.max(axis=2) > threshold).astype(np.uint8) * np.uint8(255))


def find_foreground(rgb: np.ndarray, threshold: int) -> Foreground:
    """The cell's mask and bounding box in the image as acquired (before any enhancement)."""
    cell = _cell_pixels_uint8(rgb, threshold)
    left, top, width, height = cv2.boundingRect(cell)
    box_mask = cell[top : top + height, left : left + width]
    area = cv2.countNonZero(box_mask) if box_mask.size else 0
    if area == 0:
        top = left = width = height = 0
        box_mask = np.zeros((0, 0), dtype=np.uint8)
    return Foreground(
        frame_shape=(rgb.shape[0], rgb.shape[1]),
        top=top,
        left=left,
        bottom=top + height,
        right=left + width,
        box_mask=box_mask,
        area=area,
    )


FLOAT32_EXACT_INTEGERS = 2**24


def _sequential_mean_std(levels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel mean and std of (3, N) uint8 cell pixels, bit for bit what numpy's
    `pixels.mean(axis=0)` and `pixels.std(axis=0)` give for the (N, 3) float32 `pixels`.

    numpy reduces an (N, 3) array down axis 0 one row after another in float32. While the
    total stays below 2**24 every partial sum is an exact integer, so the exact integer sum is
    that result; the squared deviations are not integers, and a cumulative sum along each
    contiguous row adds them in numpy's order, several times faster than the strided
    reduction. The divisions repeat numpy's own calls (`numpy/_core/_methods.py`)."""
    count = np.intp(levels.shape[1])
    columns = levels.astype(np.float32)
    exact = levels.sum(axis=1, dtype=np.int64)
    if int(exact.max()) <= FLOAT32_EXACT_INTEGERS:
        sums = exact.astype(np.float32)
    else:
        sums = np.cumsum(columns, axis=1, dtype=np.float32)[:, -1].copy()
    mean = np.true_divide(sums, count, out=sums, casting="unsafe", subok=False)
    deviations = np.subtract(columns, mean[:, None], out=columns)
    np.square(deviations, out=deviations)
    squares = np.cumsum(deviations, axis=1, dtype=np.float32)[:, -1].copy()
    variance = np.true_divide(squares, count, out=squares, casting="unsafe", subok=False)
    return mean, np.sqrt(variance)


def match_in_box(
    rgb: np.ndarray,
    foreground: Foreground,
    threshold: int,
    target_mean: np.ndarray | None = None,
    target_std: np.ndarray | None = None,
) -> np.ndarray:
    """`match_cell_colour` over the bounding box only, with the same result bit for bit.

    The statistics add the same pixels in the same order in float32 as before; the new value of
    a pixel depends only on its old value, so the float32 arithmetic is done once per 8-bit
    level (a 256-entry table per channel) instead of once per pixel."""
    if foreground.area == 0:
        return rgb
    box = foreground.box(rgb).copy()  # written below: never a view of the caller's image
    order = np.flatnonzero(foreground.box_mask)
    levels = np.ascontiguousarray(np.take(box.reshape(-1, RGB_CHANNELS), order, axis=0).T)
    mean, std = _sequential_mean_std(levels)
    spread = np.maximum(std, np.float32(1.0))
    values = np.repeat(np.arange(256, dtype=np.float32)[None, :], RGB_CHANNELS, axis=0)
    z_scores = (values - mean[:, None]) / spread[:, None]
    if target_mean is None:
        target_mean = np.full(RGB_CHANNELS, CELL_COLOUR_MEAN)
    if target_std is None:
        target_std = np.full(RGB_CHANNELS, CELL_COLOUR_STD)
    target = (
        z_scores * np.asarray(target_std, np.float32)[:, None]
        + np.asarray(target_mean, np.float32)[:, None]
    )
    table = np.clip(np.round(target), threshold + 1, 255).astype(np.uint8)
    recoloured = cv2.LUT(box, np.ascontiguousarray(table.T).reshape(256, 1, RGB_CHANNELS))
    cv2.copyTo(recoloured, foreground.box_mask, box)
    matched = rgb.copy()
    matched[foreground.top : foreground.bottom, foreground.left : foreground.right] = box
    return matched


def match_cell_colour(
    rgb: np.ndarray, mask: np.ndarray, mean: np.ndarray, std: np.ndarray, threshold: int
) -> np.ndarray:
    """Give the cell's pixels the target per-channel mean and std; the surround stays black
    and cell pixels stay above the foreground threshold, so the mask and the crop do not move."""
    if is_rgb_uint8(rgb) and mask.shape == rgb.shape[:2]:
        return match_in_box(rgb, foreground_of_mask(mask), threshold, mean, std)
    if not mask.any():
        return rgb
    pixels = rgb[mask].astype(np.float32)
    z_scores = (pixels - pixels.mean(axis=0)) / np.maximum(pixels.std(axis=0), np.float32(1.0))
    matched = rgb.copy()
    target = z_scores * np.asarray(std, np.float32) + np.asarray(mean, np.float32)
    matched[mask] = np.clip(np.round(target), threshold + 1, 255).astype(np.uint8)
    return matched


def standardize_cell_colour(rgb: np.ndarray, mask: np.ndarray, threshold: int) -> np.ndarray:
    """Every cell to the same fixed per-channel mean and std.

    In C-NMC the classes differ in brightness by subject, not by biology: after this step a
    cell's mean colour and contrast say nothing, and only its size, shape and texture remain.
    Mean and std, not median and IQR: quartiles of 8-bit values jump under a small change of
    gain, so they undid a re-colouring far less well.
    """
    levels = np.full(3, CELL_COLOUR_MEAN), np.full(3, CELL_COLOUR_STD)
    return match_cell_colour(rgb, mask, *levels, threshold)


def foreground_mask(rgb: np.ndarray, threshold: int) -> np.ndarray:
    """Cell pixels; a threshold, not `> 0`, because compression and CLAHE lift the black."""
    return _cell_pixels_uint8(rgb, threshold) > 0


def foreground_of_mask(mask: np.ndarray) -> Foreground:
    cell = mask.astype(np.uint8, copy=False)
    left, top, width, height = cv2.boundingRect(cell)
    box_mask = cell[top : top + height, left : left + width]
    area = cv2.countNonZero(box_mask) if box_mask.size else 0
    return Foreground(
        (mask.shape[0], mask.shape[1]), top, left, top + height, left + width, box_mask, area
    )
