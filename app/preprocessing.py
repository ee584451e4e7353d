"""The one preprocessing recipe shared by training and serving.

Training imports these functions to build its tensors and the server imports them to
answer requests, both configured by a `PreprocessConfig` stored in the model manifest,
so a model is never served with a recipe other than the one it was trained with.
Pure numpy and OpenCV: the server must not depend on torch.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum
from typing import Annotated

import cv2
import numpy as np
from pydantic import BaseModel, ConfigDict, Field

RGB_CHANNELS = 3
UINT16_TO_UINT8 = 257.0  # 65535 / 255: maps full-scale 16-bit onto full-scale 8-bit


class ImageDecodeError(ValueError):
    """The bytes are not an image this recipe can read."""


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


@dataclass(frozen=True)
class PreprocessedViews:
    """The model input plus images a person can look at (never fed to the model)."""

    tensor: np.ndarray
    model_input: np.ndarray
    enhanced_view: np.ndarray
    cropped_view: np.ndarray


def decode_image(data: bytes) -> np.ndarray:
    """Decode BMP/PNG/JPEG/TIFF bytes into an RGB uint8 array of shape (H, W, 3)."""
    if not data:
        raise ImageDecodeError("empty file")
    decoded = cv2.imdecode(np.frombuffer(data, dtype=np.uint8), cv2.IMREAD_UNCHANGED)
    if decoded is None or decoded.size == 0:
        raise ImageDecodeError("not a readable BMP, PNG, JPEG or TIFF image")
    return to_rgb_uint8(decoded)


def to_rgb_uint8(image: np.ndarray) -> np.ndarray:
    """Bring an OpenCV-decoded array (BGR order, any depth) to RGB uint8."""
    if image.dtype == np.uint16:
        image = np.round(image / UINT16_TO_UINT8).astype(np.uint8)
    elif image.dtype != np.uint8:
        raise ImageDecodeError(f"unsupported sample type {image.dtype}; use 8 or 16 bits")
    if image.ndim == 2:
        return cv2.cvtColor(image, cv2.COLOR_GRAY2RGB)
    if image.ndim != 3:
        raise ImageDecodeError(f"unsupported image shape {image.shape}")
    channels = image.shape[2]
    if channels == 1:
        return cv2.cvtColor(image[:, :, 0], cv2.COLOR_GRAY2RGB)
    if channels == RGB_CHANNELS:
        return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
    if channels == RGB_CHANNELS + 1:
        # Cells sit on black: compositing transparency over black keeps that background.
        alpha = image[:, :, 3:4].astype(np.float32) / 255.0
        composited = np.round(image[:, :, :3].astype(np.float32) * alpha).astype(np.uint8)
        return cv2.cvtColor(composited, cv2.COLOR_BGR2RGB)
    raise ImageDecodeError(f"unsupported number of channels: {channels}")


def enhance_contrast(rgb: np.ndarray, config: PreprocessConfig) -> np.ndarray:
    """Equalise lightness only (L of LAB) so that stain hues are left alone."""
    if config.contrast is ContrastMethod.NONE:
        return rgb
    lab = cv2.cvtColor(rgb, cv2.COLOR_RGB2LAB)
    lightness = lab[:, :, 0]
    if config.contrast is ContrastMethod.CLAHE:
        grid = (config.clahe_tile_grid, config.clahe_tile_grid)
        clahe = cv2.createCLAHE(clipLimit=config.clahe_clip_limit, tileGridSize=grid)
        lab[:, :, 0] = clahe.apply(lightness)
    else:
        lab[:, :, 0] = cv2.equalizeHist(lightness)
    return cv2.cvtColor(lab, cv2.COLOR_LAB2RGB)


CELL_COLOUR_MEAN = 128.0
CELL_COLOUR_STD = 32.0  # 48 clipped 2-4% of cell pixels at the dark rim; 32 under 1%


def match_cell_colour(
    rgb: np.ndarray, mask: np.ndarray, mean: np.ndarray, std: np.ndarray, threshold: int
) -> np.ndarray:
    """Give the cell's pixels the target per-channel mean and std; the surround stays black
    and cell pixels stay above the foreground threshold, so the mask and the crop do not move."""
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
    return rgb.max(axis=2) > threshold


def crop_square_window(image: np.ndarray, center_yx: tuple[int, int], size: int) -> np.ndarray:
    """A size x size window centred at center_yx; parts outside the image are black."""
    height, width = image.shape[:2]
    top = center_yx[0] - size // 2
    left = center_yx[1] - size // 2
    window = np.zeros((size, size, image.shape[2]), dtype=image.dtype)
    src_top, src_left = max(top, 0), max(left, 0)
    src_bottom, src_right = min(top + size, height), min(left + size, width)
    if src_bottom > src_top and src_right > src_left:
        window[src_top - top : src_bottom - top, src_left - left : src_right - left] = image[
            src_top:src_bottom, src_left:src_right
        ]
    return window


def center_crop(image: np.ndarray, size: int) -> np.ndarray:
    height, width = image.shape[:2]
    return crop_square_window(image, (height // 2, width // 2), size)


def crop_window_at_foreground_centroid(
    image: np.ndarray, mask: np.ndarray, size: int
) -> np.ndarray:
    """Centre a fixed window on the cell, so the cell keeps its size in pixels."""
    rows, cols = np.nonzero(mask)
    if rows.size == 0:
        return center_crop(image, size)
    return crop_square_window(image, (round(rows.mean()), round(cols.mean())), size)


def crop_foreground_bbox(image: np.ndarray, mask: np.ndarray, margin: float) -> np.ndarray:
    """Square bounding box of the cell plus a margin; the later resize erases its size."""
    rows, cols = np.nonzero(mask)
    if rows.size == 0:
        side = max(image.shape[:2])
        return center_crop(image, side)
    box_height = int(rows.max() - rows.min() + 1)
    box_width = int(cols.max() - cols.min() + 1)
    side = max(1, round(max(box_height, box_width) * (1.0 + 2.0 * margin)))
    center = (int(rows.min()) + box_height // 2, int(cols.min()) + box_width // 2)
    return crop_square_window(image, center, side)


def crop_cell(image: np.ndarray, mask: np.ndarray, config: PreprocessConfig) -> np.ndarray:
    if config.crop is CropMethod.CENTER:
        return center_crop(image, config.crop_size)
    if config.crop is CropMethod.CELL:
        return crop_window_at_foreground_centroid(image, mask, config.crop_size)
    return crop_foreground_bbox(image, mask, config.bbox_margin)


def resize_square(image: np.ndarray, size: int) -> np.ndarray:
    if image.shape[0] == size and image.shape[1] == size:
        return image
    shrinking = image.shape[0] > size
    interpolation = cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR
    return cv2.resize(image, (size, size), interpolation=interpolation)


def _enhance_and_crop(rgb: np.ndarray, config: PreprocessConfig) -> tuple[np.ndarray, np.ndarray]:
    # The mask comes from the image as acquired: enhancement lifts the black background.
    mask = foreground_mask(rgb, config.foreground_threshold)
    if config.standardize_cell_colour:
        rgb = standardize_cell_colour(rgb, mask, config.foreground_threshold)
    enhanced = enhance_contrast(rgb, config)
    resized = resize_square(crop_cell(enhanced, mask, config), config.input_size)
    return enhanced, resized


def prepare_image(rgb: np.ndarray, config: PreprocessConfig) -> np.ndarray:
    """The uint8 image that augmentation and normalisation see: colour (optionally)
    standardised, contrast enhanced, cropped and resized."""
    return _enhance_and_crop(rgb, config)[1]


def normalize_to_tensor(image: np.ndarray, config: PreprocessConfig) -> np.ndarray:
    """Scale to [0, 1], standardise by the training split's statistics, return CHW float32."""
    mean = np.asarray(config.mean, dtype=np.float32)
    std = np.asarray(config.std, dtype=np.float32)
    scaled = image.astype(np.float32) / np.float32(255.0)
    return np.ascontiguousarray(((scaled - mean) / std).transpose(2, 0, 1))


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


def preprocess_with_views(rgb: np.ndarray, config: PreprocessConfig) -> PreprocessedViews:
    enhanced, prepared = _enhance_and_crop(rgb, config)
    return PreprocessedViews(
        tensor=normalize_to_tensor(prepared, config),
        model_input=prepared,
        enhanced_view=rescale_for_display(enhanced),
        cropped_view=rescale_for_display(prepared),
    )


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
