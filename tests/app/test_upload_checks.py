import io

import cv2
import numpy as np
import pytest
from PIL import Image

from app.upload_checks import UploadLimits, UploadRejectedError, inspect_upload

LIMITS = UploadLimits(max_bytes=2_000_000, max_pixels=1_000_000)


def pillow_bytes(format_name: str, size=(20, 10), mode="RGB", **save) -> bytes:
    buffer = io.BytesIO()
    Image.new(mode, size, 120).save(buffer, format=format_name, **save)
    return buffer.getvalue()


@pytest.mark.parametrize(
    ("format_name", "mode"),
    [
        ("PNG", "RGB"),
        ("BMP", "RGB"),
        ("JPEG", "RGB"),
        ("TIFF", "RGB"),
        ("PNG", "I;16"),
        ("JPEG", "CMYK"),
    ],
)
def test_supported_formats_pass_with_their_size(format_name, mode):
    header = inspect_upload(pillow_bytes(format_name, mode=mode), "image/png", LIMITS)
    assert header.format == format_name
    assert (header.width, header.height) == (20, 10)


@pytest.mark.parametrize("format_name", ["GIF", "WEBP", "ICO"])
def test_other_image_formats_are_unsupported(format_name):
    with pytest.raises(UploadRejectedError) as caught:
        inspect_upload(pillow_bytes(format_name), "application/octet-stream", LIMITS)
    assert caught.value.status_code == 415
    assert format_name in caught.value.detail


@pytest.mark.parametrize(
    ("data", "content_type", "status"),
    [
        (b"", "image/png", 400),
        (b"%PDF-1.7 not an image", "application/pdf", 415),
        (b"<svg xmlns='http://www.w3.org/2000/svg'/>", "image/svg+xml", 415),
        (b"PK\x03\x04 zip archive", "application/zip", 415),
        (b"random bytes", None, 400),
        (b"random bytes", "application/octet-stream", 400),
        (b"random bytes", "image/png", 400),
    ],
)
def test_unreadable_data(data, content_type, status):
    with pytest.raises(UploadRejectedError) as caught:
        inspect_upload(data, content_type, LIMITS)
    assert caught.value.status_code == status


def test_byte_limit():
    with pytest.raises(UploadRejectedError) as caught:
        inspect_upload(b"\0" * 2_000_001, "image/png", LIMITS)
    assert caught.value.status_code == 413


def test_pixel_limit_is_read_from_the_header():
    ok, data = cv2.imencode(".png", np.zeros((1001, 1000), np.uint8))
    assert ok
    with pytest.raises(UploadRejectedError) as caught:
        inspect_upload(data.tobytes(), "image/png", LIMITS)
    assert caught.value.status_code == 413
    assert "1000x1001" in caught.value.detail


def test_a_header_claiming_a_gigantic_image_is_refused_without_decoding():
    """A 100000 x 100000 PNG header with no pixel data: Pillow's bomb check or ours says 413."""
    import struct
    import zlib

    def chunk(kind: bytes, body: bytes) -> bytes:
        return (
            struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
        )

    header = struct.pack(">IIBBBBB", 100_000, 100_000, 8, 2, 0, 0, 0)
    data = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IEND", b"")
    with pytest.raises(UploadRejectedError) as caught:
        inspect_upload(data, "image/png", UploadLimits(max_bytes=10**6, max_pixels=50_000_000))
    assert caught.value.status_code == 413
