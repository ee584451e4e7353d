"""Reject bad uploads before decoding them: size in bytes, type, and pixels from the header.

Pillow reads only the header here (it never decodes the pixels), so a small file claiming a
huge image is refused before OpenCV would allocate memory for it.
"""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass

from PIL import Image, UnidentifiedImageError

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


class UploadRejectedError(Exception):
    """A client error with its HTTP status and a reason to show the client."""

    def __init__(self, status_code: int, detail: str) -> None:
        super().__init__(detail)
        self.status_code = status_code
        self.detail = detail


@dataclass(frozen=True)
class UploadLimits:
    max_bytes: int
    max_pixels: int


@dataclass(frozen=True)
class ImageHeader:
    format: str
    width: int
    height: int


def _declared_unsupported(content_type: str | None) -> bool:
    """Whether the client said outright that this is not one of our image types."""
    declared = (content_type or "").split(";")[0].strip().lower()
    return declared not in NEUTRAL_CONTENT_TYPES | SUPPORTED_CONTENT_TYPES


def inspect_upload(data: bytes, content_type: str | None, limits: UploadLimits) -> ImageHeader:
    if len(data) > limits.max_bytes:
        raise UploadRejectedError(
            413, f"file is {len(data)} bytes; the limit is {limits.max_bytes}"
        )
    if not data:
        raise UploadRejectedError(400, "empty file")
    try:
        with warnings.catch_warnings():
            # Pillow warns about oddities in headers (bombs, corrupt EXIF); the checks below or
            # the decoder decide, and warnings must not leak into the server's logs per upload.
            warnings.simplefilter("ignore")
            with Image.open(io.BytesIO(data)) as image:
                header = ImageHeader(
                    format=image.format or "", width=image.width, height=image.height
                )
    except Image.DecompressionBombError as error:
        raise UploadRejectedError(413, f"image has too many pixels: {error}") from error
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as error:
        if _declared_unsupported(content_type):
            raise UploadRejectedError(
                415, f"unsupported type {content_type}; send a BMP, PNG, JPEG or TIFF image"
            ) from error
        raise UploadRejectedError(400, "not a readable BMP, PNG, JPEG or TIFF image") from error
    if header.format not in SUPPORTED_FORMATS:
        raise UploadRejectedError(
            415, f"unsupported image type {header.format or 'unknown'}; send BMP, PNG, JPEG or TIFF"
        )
    pixels = header.width * header.height
    if pixels > limits.max_pixels:
        raise UploadRejectedError(
            413,
            f"image is {header.width}x{header.height} ({pixels} pixels); "
            f"the limit is {limits.max_pixels} pixels",
        )
    return header
