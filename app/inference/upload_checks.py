"""Reject bad uploads before decoding them: size in bytes, type, and cost from the header.

Pillow reads only the header here (it never decodes the pixels), so a small file claiming a
huge image is refused before OpenCV would allocate memory for it. The header gives width,
height, samples per pixel and bits per sample for every supported format, so the memory the
decoder will need is known, and bounded, before it runs.
"""

from __future__ import annotations

import io
import math
import warnings
from dataclasses import dataclass

from PIL import Image, UnidentifiedImageError

from app.core.domain.outcomes import RefusalKind, RefusedError
from app.core.image_decoding import PNG_SIGNATURE

SUPPORTED_FORMATS = {"BMP", "PNG", "JPEG", "TIFF"}
SUPPORTED_CONTENT_TYPES = {
    "image/bmp",
    "image/x-bmp",
    "image/x-ms-bmp",
    "image/png",
    "image/jpeg",
    "image/jpg",
    "image/pjpeg",
    "image/tiff",
    "image/tif",
}
NEUTRAL_CONTENT_TYPES = {"", "application/octet-stream"}

# C-NMC cells are 450 x 450 and the models crop a fixed 352-pixel window at that scale, so a
# cell image needs little more: 1024 x 1024 (five times the area) leaves a wide margin while
# bounding the worst decode's time and memory (measured in docs/security.md). Side: 1 x 4000
# strips are legal images, so the side limit is looser than the square root of the pixel limit.
DEFAULT_MAX_PIXELS = 1024 * 1024
DEFAULT_MAX_SIDE = 4096
# What OpenCV allocates for the decoded array: an 8-bit RGBA image at the pixel limit. 16-bit
# images need twice as much per pixel and are accepted up to half the pixels.
DEFAULT_MAX_DECODED_BYTES = DEFAULT_MAX_PIXELS * 4

# A baseline JPEG has one scan per image (or per component); libjpeg's progressive scripts use
# 6 (grey) to 10 (colour). Every scan is a pass over all the coefficients, so the decoding cost
# is scans x pixels and a small file of repeated tiny scans costs seconds (docs/security.md).
MAX_JPEG_SCANS = 64
_JPEG_START_OF_SCAN = b"\xff\xda"
# TIFF tiles are multiples of 16 pixels, so a tile may overhang the image by up to 15.
_TIFF_TILE_ALIGNMENT = 16
_TIFF_TILE_WIDTH = 322
_TIFF_TILE_LENGTH = 323

# PNG colour type -> channels OpenCV returns with IMREAD_UNCHANGED (palette may carry alpha).
_PNG_CHANNELS = {0: 1, 2: 3, 3: 4, 4: 4, 6: 4}
_TIFF_BITS_PER_SAMPLE = 258
_TIFF_SAMPLES_PER_PIXEL = 277


@dataclass(frozen=True)
class UploadLimits:
    max_bytes: int
    max_pixels: int = DEFAULT_MAX_PIXELS
    max_side: int = DEFAULT_MAX_SIDE
    max_decoded_bytes: int = DEFAULT_MAX_DECODED_BYTES


@dataclass(frozen=True)
class ImageHeader:
    format: str
    width: int
    height: int
    channels: int = 3
    bits_per_sample: int = 8
    tile: tuple[int, int] | None = None
    """A tiled TIFF's tile width and length."""

    @property
    def decoded_bytes(self) -> int:
        """The size of the array the decoder returns: samples times bytes per sample."""
        sample_bytes = max(1, math.ceil(self.bits_per_sample / 8))
        return self.width * self.height * self.channels * sample_bytes


def _declared_unsupported(content_type: str | None) -> bool:
    """Whether the client said outright that this is not one of our image types."""
    declared = (content_type or "").split(";")[0].strip().lower()
    return declared not in NEUTRAL_CONTENT_TYPES | SUPPORTED_CONTENT_TYPES


def _mode_depth(image: Image.Image) -> tuple[int, int]:
    """Channels and bits per sample from Pillow's mode, the fallback for every format."""
    mode = image.mode
    if mode.startswith("I;16"):
        return 1, 16
    if mode in {"I", "F"}:
        return 1, 32
    return len(image.getbands()), 8


def _sample_layout(image: Image.Image, data: bytes) -> tuple[int, int]:
    """Channels and bits per sample the decoder will produce, read from the header only.

    Pillow maps 16-bit colour PNGs to 8-bit modes, so PNG's own header (IHDR) is read; TIFF
    keeps the values in its tags; JPEG in its frame header."""
    channels, bits = _mode_depth(image)
    if image.mode in {"P", "PA", "1"} or image.format == "BMP":
        # Palette and 1-bit images decode to colour: BGR, or BGRA when alpha is possible.
        channels = max(channels, 4 if image.mode in {"P", "PA", "RGBA"} else 3)
    if image.format == "PNG" and data.startswith(PNG_SIGNATURE) and len(data) >= 26:
        bits = max(8, data[24])
        channels = _PNG_CHANNELS.get(data[25], 4)
    elif image.format == "TIFF":
        tags = getattr(image, "tag_v2", {})
        declared_bits = tags.get(_TIFF_BITS_PER_SAMPLE, bits)
        if isinstance(declared_bits, tuple):
            declared_bits = max(declared_bits, default=bits)
        bits = max(8, int(declared_bits))
        channels = max(channels, int(tags.get(_TIFF_SAMPLES_PER_PIXEL, channels)))
    elif image.format == "JPEG":
        bits = max(8, int(getattr(image, "bits", 8)))
    return channels, bits


def _tiff_tile(image: Image.Image) -> tuple[int, int] | None:
    tags = getattr(image, "tag_v2", {})
    if _TIFF_TILE_WIDTH not in tags or _TIFF_TILE_LENGTH not in tags:
        return None
    return int(tags[_TIFF_TILE_WIDTH]), int(tags[_TIFF_TILE_LENGTH])


def _aligned(side: int) -> int:
    return -(-side // _TIFF_TILE_ALIGNMENT) * _TIFF_TILE_ALIGNMENT


def check_codec_cost(data: bytes, header: ImageHeader, limits: UploadLimits) -> None:
    """What the decoder will spend beyond the decoded array, read from the file's structure:
    JPEG scans (each one a pass over the image) and TIFF tiles (each one a buffer)."""
    if header.format == "JPEG":
        # 0xFF 0xDA cannot occur inside entropy-coded data (0xFF is stuffed there), so this
        # counts the scans, plus any in an embedded thumbnail.
        scans = data.count(_JPEG_START_OF_SCAN)
        if scans > MAX_JPEG_SCANS:
            raise RefusedError(
                RefusalKind.TOO_LARGE,
                f"JPEG with {scans} scans; the limit is {MAX_JPEG_SCANS} (a progressive "
                "JPEG needs at most 10): save it as a baseline JPEG or PNG",
            )
    if header.format == "TIFF" and header.tile is not None:
        width, length = header.tile
        if width > _aligned(header.width) or length > _aligned(header.height):
            raise RefusedError(
                RefusalKind.TOO_LARGE,
                f"TIFF tiles of {width}x{length} for a {header.width}x{header.height} "
                "image: a tile may not be larger than the image",
            )
        sample_bytes = max(1, math.ceil(header.bits_per_sample / 8))
        tile_bytes = width * length * header.channels * sample_bytes
        if tile_bytes > limits.max_decoded_bytes:
            raise RefusedError(
                RefusalKind.TOO_LARGE,
                f"TIFF tiles of {tile_bytes} bytes; the limit is {limits.max_decoded_bytes}",
            )


def read_header(data: bytes, content_type: str | None) -> ImageHeader:
    """Format, size and sample layout; the pixels are never decoded."""
    try:
        with warnings.catch_warnings():
            # Pillow warns about oddities in headers (bombs, corrupt EXIF); the checks below or
            # the decoder decide, and warnings must not leak into the server's logs per upload.
            warnings.simplefilter("ignore")
            with Image.open(io.BytesIO(data)) as image:
                channels, bits = _sample_layout(image, data)
                return ImageHeader(
                    format=image.format or "",
                    width=image.width,
                    height=image.height,
                    channels=channels,
                    bits_per_sample=bits,
                    tile=_tiff_tile(image) if image.format == "TIFF" else None,
                )
    except Image.DecompressionBombError as error:
        raise RefusedError(RefusalKind.TOO_LARGE, f"image has too many pixels: {error}") from error
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as error:
        if _declared_unsupported(content_type):
            raise RefusedError(
                RefusalKind.UNSUPPORTED_TYPE,
                f"unsupported type {content_type}; send a BMP, PNG, JPEG or TIFF image",
            ) from error
        raise RefusedError(
            RefusalKind.UNREADABLE, "not a readable BMP, PNG, JPEG or TIFF image"
        ) from error


def inspect_upload(data: bytes, content_type: str | None, limits: UploadLimits) -> ImageHeader:
    if len(data) > limits.max_bytes:
        raise RefusedError(
            RefusalKind.TOO_LARGE, f"file is {len(data)} bytes; the limit is {limits.max_bytes}"
        )
    if not data:
        raise RefusedError(RefusalKind.EMPTY, "empty file")
    header = read_header(data, content_type)
    if header.format not in SUPPORTED_FORMATS:
        raise RefusedError(
            RefusalKind.UNSUPPORTED_TYPE,
            f"unsupported image type {header.format or 'unknown'}; send BMP, PNG, JPEG or TIFF",
        )
    size = f"{header.width}x{header.height}"
    pixels = header.width * header.height
    if pixels > limits.max_pixels:
        raise RefusedError(
            RefusalKind.TOO_LARGE,
            f"image is {size} ({pixels} pixels); the limit is {limits.max_pixels} pixels",
        )
    if max(header.width, header.height) > limits.max_side:
        raise RefusedError(
            RefusalKind.TOO_LARGE,
            f"image is {size}; the limit is {limits.max_side} pixels per side",
        )
    if header.decoded_bytes > limits.max_decoded_bytes:
        raise RefusedError(
            RefusalKind.TOO_LARGE,
            f"image is {size} with {header.channels} channels of {header.bits_per_sample} bits: "
            f"{header.decoded_bytes} bytes decoded; the limit is {limits.max_decoded_bytes}",
        )
    check_codec_cost(data, header, limits)
    return header
