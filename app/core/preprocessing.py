"""The one preprocessing recipe shared by training and serving.

Training imports these functions to build its tensors and the server imports them to
answer requests, both configured by a `PreprocessConfig` stored in the model manifest,
so a model is never served with a recipe other than the one it was trained with.
Pure numpy and OpenCV: the server must not depend on torch.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from enum import StrEnum
from functools import lru_cache
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


PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
PNG_8_BIT_RGB = bytes([8, 2])
"""IHDR's bit depth and colour type of an 8-bit RGB PNG (not grey, palette, alpha or 16 bits)."""
PNG_CHUNKS_TO_READ = 64
"""Chunk headers read before giving up on the fast path: a file of many tiny chunks must not
cost more to inspect than to decode, and the general path is right for any file."""
DECODE_AS_RGB = cv2.IMREAD_COLOR_RGB | cv2.IMREAD_IGNORE_ORIENTATION
"""Straight to RGB, with the stored orientation (as IMREAD_UNCHANGED keeps it)."""


def png_chunk_types(data: bytes) -> Iterator[bytes]:
    """The type of each chunk of a PNG, in file order, from the chunk headers alone."""
    position = len(PNG_SIGNATURE)
    while position + 8 <= len(data):
        length = int.from_bytes(data[position : position + 4], "big")
        yield data[position + 4 : position + 8]
        position += 12 + length


def is_8_bit_rgb_png(data: bytes) -> bool:
    """An 8-bit RGB PNG without a transparent colour, the format of the C-NMC cells here.

    libpng writes these in RGB order itself: the same pixels as decoding in OpenCV's BGR order
    and swapping the channels, without the swap (docs/performance.md). A tRNS chunk (before the
    image data) makes OpenCV add an alpha channel, which the general path composites over
    black, so such a file takes that path, as does every other layout. So does BMP: OpenCV's
    own RGB output there is slower than BGR plus the swap."""
    if not (
        data.startswith(PNG_SIGNATURE) and data[12:16] == b"IHDR" and data[24:26] == PNG_8_BIT_RGB
    ):
        return False
    for read, chunk_type in enumerate(png_chunk_types(data)):
        if chunk_type == b"IDAT":
            return True
        if chunk_type == b"tRNS" or read == PNG_CHUNKS_TO_READ:
            return False
    return False


def decode_image(data: bytes) -> np.ndarray:
    """Decode BMP/PNG/JPEG/TIFF bytes into an RGB uint8 array of shape (H, W, 3)."""
    if not data:
        raise ImageDecodeError("empty file")
    encoded = np.frombuffer(data, dtype=np.uint8)
    as_rgb = is_8_bit_rgb_png(data)
    decoded = cv2.imdecode(encoded, DECODE_AS_RGB if as_rgb else cv2.IMREAD_UNCHANGED)
    if decoded is None or decoded.size == 0:
        raise ImageDecodeError("not a readable BMP, PNG, JPEG or TIFF image")
    return decoded if as_rgb else to_rgb_uint8(decoded)


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


CELL_COLOUR_MEAN = 128.0
CELL_COLOUR_STD = 32.0  # 48 clipped 2-4% of cell pixels at the dark rim; 32 under 1%


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


def _is_rgb_uint8(image: np.ndarray) -> bool:
    return image.dtype == np.uint8 and image.ndim == 3 and image.shape[2] == RGB_CHANNELS


def _cell_pixels_uint8(rgb: np.ndarray, threshold: int) -> np.ndarray:
    """255 where the largest channel exceeds the threshold: one SIMD pass instead of a
    strided max over the channel axis."""
    if _is_rgb_uint8(rgb):
        background = cv2.inRange(rgb, (0, 0, 0), (threshold, threshold, threshold))
        return cv2.bitwise_not(background)
    return (rgb.max(axis=2) > threshold).astype(np.uint8) * np.uint8(255)


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


def _match_in_box(
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
    if _is_rgb_uint8(rgb) and mask.shape == rgb.shape[:2]:
        return _match_in_box(rgb, _foreground_of_mask(mask), threshold, mean, std)
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


def _centroid(mask: np.ndarray) -> tuple[int, int] | None:
    foreground = _foreground_of_mask(mask)
    return None if foreground.area == 0 else foreground.centroid()


def _foreground_of_mask(mask: np.ndarray) -> Foreground:
    cell = mask.astype(np.uint8, copy=False)
    left, top, width, height = cv2.boundingRect(cell)
    box_mask = cell[top : top + height, left : left + width]
    area = cv2.countNonZero(box_mask) if box_mask.size else 0
    return Foreground(
        (mask.shape[0], mask.shape[1]), top, left, top + height, left + width, box_mask, area
    )


def centroid_window_crop(image: np.ndarray, mask: np.ndarray, size: int) -> np.ndarray:
    """Centre a fixed window on the cell, so the cell keeps its size in pixels."""
    centre = _centroid(mask)
    if centre is None:
        return center_crop(image, size)
    return square_window_crop(image, centre, size)


def _bbox_window(foreground: Foreground, margin: float) -> tuple[tuple[int, int], int]:
    box_height = foreground.bottom - foreground.top
    box_width = foreground.right - foreground.left
    side = max(1, round(max(box_height, box_width) * (1.0 + 2.0 * margin)))
    return (foreground.top + box_height // 2, foreground.left + box_width // 2), side


def foreground_bbox_crop(image: np.ndarray, mask: np.ndarray, margin: float) -> np.ndarray:
    """Square bounding box of the cell plus a margin; the later resize erases its size."""
    foreground = _foreground_of_mask(mask)
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

    A cell frame is about 80% black background; the conversion is pixel-wise, so every black
    pixel takes OpenCV's own value for black and the array equals the full conversion bit for
    bit, for about 40% of the CPU time on fold-1 frames (`bench/lab_conversion.py`). Empty and
    other than RGB uint8 arrays go to OpenCV as they are, so they fail as it fails."""
    if rgb.size == 0 or not _is_rgb_uint8(rgb):
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


def enhance_contrast(rgb: np.ndarray, config: PreprocessConfig) -> np.ndarray:
    """Equalise lightness only (L of LAB) so that stain hues are left alone."""
    if config.contrast is ContrastMethod.NONE:
        return rgb
    return cv2.cvtColor(_equalized_lab(rgb, config), cv2.COLOR_LAB2RGB)


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
        rgb = _match_in_box(rgb, foreground, config.foreground_threshold)
    centre, side = recipe_crop_window(foreground, config)
    if config.contrast is ContrastMethod.NONE:
        enhanced = rgb
        window = square_window_crop(rgb, centre, side)
    else:
        lab = _equalized_lab(rgb, config)
        enhanced = cv2.cvtColor(lab, cv2.COLOR_LAB2RGB) if whole_frame else None
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


def _enhance_and_crop(rgb: np.ndarray, config: PreprocessConfig) -> tuple[np.ndarray, np.ndarray]:
    """The whole enhanced frame and the prepared crop (kept for callers of the old helper)."""
    output = run_recipe(rgb, config, whole_frame=True)
    return (output.enhanced if output.enhanced is not None else rgb), output.prepared


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
    if not _is_rgb_uint8(image):
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
