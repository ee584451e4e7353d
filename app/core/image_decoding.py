"""Image bytes to an RGB uint8 array: BMP, PNG, JPEG and TIFF, any depth OpenCV reads.

An 8-bit RGB PNG (the C-NMC cells' format) is read straight to RGB by libpng; every other layout
is decoded in OpenCV's order and brought to RGB uint8 here.
"""

from __future__ import annotations

from collections.abc import Iterator

import cv2
import numpy as np

RGB_CHANNELS = 3
UINT16_TO_UINT8 = 257.0  # 65535 / 255: maps full-scale 16-bit onto full-scale 8-bit


class ImageDecodeError(ValueError):
    """The bytes are not an image this recipe can read."""


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
