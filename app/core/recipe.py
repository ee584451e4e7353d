"""The one preprocessing recipe shared by training and serving: the cell found, its colour
optionally standardised, the lightness equalised, one window cropped and resized, normalised.

Training imports these functions to build its tensors and the server imports them to
answer requests, both configured by a `PreprocessConfig` stored in the model manifest,
so a model is never served with a recipe other than the one it was trained with.
Pure numpy and OpenCV: the server must not depend on torch.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum
from functools import lru_cache
from typing import Annotated

import cv2
import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from app.core.cell_colour import Foreground, find_foreground, is_rgb_uint8, match_in_box
from app.core.image_decoding import RGB_CHANNELS


class ContrastMethod(StrEnum):
    CLAHE = "clahe"
    HISTOGRAM_EQUALIZATION = "he"
    NONE = "none"


class CropMethod(StrEnum):
    CENTER = "center"
    """A fixed window at the image centre (the paper's choice)."""
    CELL = "cell"
    """A fixed window centred on the cell: keeps the cell's absolute size."""
    BBOX = "bbox"
    """The cell's bounding box made square: erases absolute size."""


UnitInterval = Annotated[float, Field(ge=0.0, le=1.0)]
PositiveStd = Annotated[float, Field(gt=0.0)]


class PreprocessConfig(BaseModel):
    """Every parameter of the recipe; written into each model manifest."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    contrast: ContrastMethod = ContrastMethod.CLAHE
    clahe_clip_limit: float = Field(2.0, gt=0.0)
    clahe_tile_grid: int = Field(8, ge=1, le=64)
    crop: CropMethod = CropMethod.CELL
    crop_size: int = Field(
        352, ge=8, le=4096, description="Side of the center/cell window in source pixels."
    )
    bbox_margin: float = Field(0.1, ge=0.0, le=1.0, description="Margin per side, bbox crop.")
    foreground_threshold: int = Field(
        15, ge=0, le=254, description="A pixel is cell when its largest channel exceeds this."
    )
    standardize_cell_colour: bool = Field(
        False,
        description="Set each channel's mean and std inside the cell to fixed values first, "
        "so that brightness and stain, which differ by subject and batch, carry no signal.",
    )
    input_size: int = Field(224, ge=8, le=2048)
    mean: tuple[UnitInterval, UnitInterval, UnitInterval] = (0.5, 0.5, 0.5)
    std: tuple[PositiveStd, PositiveStd, PositiveStd] = (0.5, 0.5, 0.5)


def _window_origin(center_yx: tuple[int, int], size: int) -> tuple[int, int]:
    return center_yx[0] - size // 2, center_yx[1] - size // 2


def _paste_window(
    source: np.ndarray, top: int, left: int, size: int, channels: int
) -> tuple[np.ndarray, tuple[slice, slice], tuple[slice, slice]] | None:
    """Where a size x size window at (top, left) overlaps the image, as two pairs of slices
    (into the window, into the image); None when they do not overlap."""
    height, width = source.shape[:2]
    src_top, src_left = max(top, 0), max(left, 0)
    src_bottom, src_right = min(top + size, height), min(left + size, width)
    window = np.zeros((size, size, channels), dtype=source.dtype)
    if src_bottom <= src_top or src_right <= src_left:
        return None
    return (
        window,
        (slice(src_top - top, src_bottom - top), slice(src_left - left, src_right - left)),
        (slice(src_top, src_bottom), slice(src_left, src_right)),
    )


def square_window_crop(image: np.ndarray, center_yx: tuple[int, int], size: int) -> np.ndarray:
    """A size x size window centred at center_yx; parts outside the image are black."""
    top, left = _window_origin(center_yx, size)
    placed = _paste_window(image, top, left, size, image.shape[2])
    if placed is None:
        return np.zeros((size, size, image.shape[2]), dtype=image.dtype)
    window, inner, outer = placed
    window[inner] = image[outer]
    return window


def center_crop(image: np.ndarray, size: int) -> np.ndarray:
    height, width = image.shape[:2]
    return square_window_crop(image, (height // 2, width // 2), size)


def _bbox_window(foreground: Foreground, margin: float) -> tuple[tuple[int, int], int]:
    box_height = foreground.bottom - foreground.top
    box_width = foreground.right - foreground.left
    side = max(1, round(max(box_height, box_width) * (1.0 + 2.0 * margin)))
    return (foreground.top + box_height // 2, foreground.left + box_width // 2), side


def recipe_crop_window(
    foreground: Foreground, config: PreprocessConfig
) -> tuple[tuple[int, int], int]:
    """Centre and side of the recipe's crop: the same window as `recipe_crop`."""
    height, width = foreground.frame_shape
    if config.crop is CropMethod.CENTER:
        return (height // 2, width // 2), config.crop_size
    if config.crop is CropMethod.CELL:
        if foreground.area == 0:
            return (height // 2, width // 2), config.crop_size
        return foreground.centroid(), config.crop_size
    if foreground.area == 0:
        return (height // 2, width // 2), max(height, width)
    return _bbox_window(foreground, config.bbox_margin)


def resize_square(image: np.ndarray, size: int) -> np.ndarray:
    if image.shape[0] == size and image.shape[1] == size:
        return image
    shrinking = image.shape[0] > size
    interpolation = cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR
    return cv2.resize(image, (size, size), interpolation=interpolation)


BLACK_LAB: tuple[int, ...] = tuple(
    int(value)
    for value in cv2.cvtColor(np.zeros((1, 1, RGB_CHANNELS), np.uint8), cv2.COLOR_RGB2LAB)[0, 0]
)
"""What OpenCV makes of a black pixel, asked rather than assumed."""


@lru_cache(maxsize=8)
def _black_lab_frame(height: int, width: int) -> np.ndarray:
    frame = np.empty((height, width, RGB_CHANNELS), dtype=np.uint8)
    frame[:] = BLACK_LAB
    frame.flags.writeable = False
    return frame


def _non_black_box(image: np.ndarray) -> tuple[int, int, int, int]:
    """(top, left, bottom, right) of the pixels with any channel above 0: one SIMD pass of
    `cv2.boundingRect` over the bytes, columns of bytes turned back into columns of pixels."""
    height, width, channels = image.shape
    left, top, byte_width, box_height = cv2.boundingRect(image.reshape(height, width * channels))
    return top, left // channels, top + box_height, -(-(left + byte_width) // channels)


def rgb_to_lab(rgb: np.ndarray) -> np.ndarray:
    """`cv2.cvtColor(rgb, COLOR_RGB2LAB)`, converted over the box of non-black pixels only.

    A cell frame is mostly black background; the conversion is pixel-wise, so every black
    pixel takes OpenCV's own value for black and the array equals the full conversion bit for
    bit, for a fraction of the CPU time (docs/performance.md, `bench/lab_conversion.py`). Empty
    and other than RGB uint8 arrays go to OpenCV as they are, so they fail as it fails."""
    if rgb.size == 0 or not is_rgb_uint8(rgb):
        return cv2.cvtColor(rgb, cv2.COLOR_RGB2LAB)
    top, left, bottom, right = _non_black_box(rgb)
    lab = _black_lab_frame(rgb.shape[0], rgb.shape[1]).copy()
    if bottom > top and right > left:
        lab[top:bottom, left:right] = cv2.cvtColor(rgb[top:bottom, left:right], cv2.COLOR_RGB2LAB)
    return lab


def _equalized_lab(rgb: np.ndarray, config: PreprocessConfig) -> np.ndarray:
    """LAB with its lightness equalised over the whole frame (the tiles see every pixel)."""
    lab = rgb_to_lab(rgb)
    lightness = lab[:, :, 0]
    if config.contrast is ContrastMethod.CLAHE:
        grid = (config.clahe_tile_grid, config.clahe_tile_grid)
        clahe = cv2.createCLAHE(clipLimit=config.clahe_clip_limit, tileGridSize=grid)
        lab[:, :, 0] = clahe.apply(lightness)
    else:
        lab[:, :, 0] = cv2.equalizeHist(lightness)
    return lab


@dataclass(frozen=True)
class RecipeOutput:
    prepared: np.ndarray
    """The uint8 model input before normalisation."""
    enhanced: np.ndarray | None
    """The whole enhanced frame, only when asked for (it costs a full-frame conversion)."""


def run_recipe(
    rgb: np.ndarray,
    config: PreprocessConfig,
    foreground: Foreground | None = None,
    *,
    whole_frame: bool = False,
) -> RecipeOutput:
    """The recipe with its mask found once (or handed in) and the colour conversion back to RGB
    done on the crop only: pixel-wise conversions commute with cropping, so the crop equals
    the one cut from the fully converted frame."""
    if foreground is None:
        foreground = find_foreground(rgb, config.foreground_threshold)
    if config.standardize_cell_colour:
        rgb = match_in_box(rgb, foreground, config.foreground_threshold)
    centre, side = recipe_crop_window(foreground, config)
    enhanced: np.ndarray | None
    if config.contrast is ContrastMethod.NONE:
        enhanced = rgb
        window = square_window_crop(rgb, centre, side)
    else:
        lab = _equalized_lab(rgb, config)
        enhanced = np.asarray(cv2.cvtColor(lab, cv2.COLOR_LAB2RGB)) if whole_frame else None
        if enhanced is not None:
            window = square_window_crop(enhanced, centre, side)
        else:
            top, left = _window_origin(centre, side)
            placed = _paste_window(lab, top, left, side, RGB_CHANNELS)
            if placed is None:
                window = np.zeros((side, side, RGB_CHANNELS), dtype=np.uint8)
            else:
                window, inner, outer = placed
                window[inner] = cv2.cvtColor(lab[outer], cv2.COLOR_LAB2RGB)
    prepared = resize_square(window, config.input_size)
    return RecipeOutput(prepared=prepared, enhanced=enhanced if whole_frame else None)


def prepare_image(rgb: np.ndarray, config: PreprocessConfig) -> np.ndarray:
    """The uint8 image that augmentation and normalisation see: colour (optionally)
    standardised, contrast enhanced, cropped and resized."""
    return run_recipe(rgb, config).prepared


def _normalization_table(config: PreprocessConfig) -> np.ndarray:
    """(256, 3) float32: every 8-bit level through the same float32 operations as a pixel."""
    mean = np.asarray(config.mean, dtype=np.float32)
    std = np.asarray(config.std, dtype=np.float32)
    levels = np.repeat(np.arange(256, dtype=np.uint8)[:, None], RGB_CHANNELS, axis=1)
    return (levels.astype(np.float32) / np.float32(255.0) - mean) / std


def normalize_to_tensor(image: np.ndarray, config: PreprocessConfig) -> np.ndarray:
    """Scale to [0, 1], standardise by the training split's statistics, return CHW float32.

    A lookup of the 256 levels computed with the very operations applied per pixel before, so
    the tensor is bitwise the same."""
    if not is_rgb_uint8(image):
        mean = np.asarray(config.mean, dtype=np.float32)
        std = np.asarray(config.std, dtype=np.float32)
        scaled = image.astype(np.float32) / np.float32(255.0)
        return np.ascontiguousarray(((scaled - mean) / std).transpose(2, 0, 1))
    table = _normalization_table(config)
    tensor = np.empty((RGB_CHANNELS, *image.shape[:2]), dtype=np.float32)
    for channel in range(RGB_CHANNELS):
        np.take(table[:, channel], image[:, :, channel], out=tensor[channel])
    return tensor


def preprocess(rgb: np.ndarray, config: PreprocessConfig) -> np.ndarray:
    """The model input for one decoded image: float32 of shape (3, size, size)."""
    return normalize_to_tensor(prepare_image(rgb, config), config)


def rescale_for_display(image: np.ndarray) -> np.ndarray:
    """Min-max stretch to [0, 255] so dark crops are visible; for people, not the model."""
    low, high = int(image.min()), int(image.max())
    if high == low:
        return np.zeros_like(image, dtype=np.uint8)
    stretched = (image.astype(np.float32) - low) * (255.0 / (high - low))
    return np.round(stretched).astype(np.uint8)


ChannelTriple = tuple[float, float, float]


def channel_statistics(
    prepared_images: Iterable[np.ndarray],
) -> tuple[ChannelTriple, ChannelTriple]:
    """Per-channel mean and std in [0, 1] over prepared images (the paper's eq. 1)."""
    total = np.zeros(RGB_CHANNELS, dtype=np.float64)
    total_sq = np.zeros(RGB_CHANNELS, dtype=np.float64)
    count = 0
    for image in prepared_images:
        pixels = image.reshape(-1, RGB_CHANNELS).astype(np.float64) / 255.0
        total += pixels.sum(axis=0)
        total_sq += np.square(pixels).sum(axis=0)
        count += pixels.shape[0]
    if count == 0:
        raise ValueError("no images to compute statistics from")
    mean = total / count
    std = np.sqrt(np.maximum(total_sq / count - np.square(mean), 1e-12))
    return _as_triple(mean), _as_triple(std)


def _as_triple(values: np.ndarray) -> ChannelTriple:
    return (float(values[0]), float(values[1]), float(values[2]))
