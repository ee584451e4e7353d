import io

import cv2
import numpy as np
import pytest
from PIL import Image

from app.core.domain.outcomes import RefusalKind, RefusedError
from app.inference.upload_checks import UploadLimits, inspect_upload
from app.web.errors import STATUS_FOR_REFUSAL

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
    with pytest.raises(RefusedError) as caught:
        inspect_upload(pillow_bytes(format_name), "application/octet-stream", LIMITS)
    assert caught.value.kind is RefusalKind.UNSUPPORTED_TYPE
    assert format_name in caught.value.reason


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
    with pytest.raises(RefusedError) as caught:
        inspect_upload(data, content_type, LIMITS)
    assert STATUS_FOR_REFUSAL[caught.value.kind] == status


def test_byte_limit():
    with pytest.raises(RefusedError) as caught:
        inspect_upload(b"\0" * 2_000_001, "image/png", LIMITS)
    assert caught.value.kind is RefusalKind.TOO_LARGE


def test_pixel_limit_is_read_from_the_header():
    ok, data = cv2.imencode(".png", np.zeros((1001, 1000), np.uint8))
    assert ok
    with pytest.raises(RefusedError) as caught:
        inspect_upload(data.tobytes(), "image/png", LIMITS)
    assert caught.value.kind is RefusalKind.TOO_LARGE
    assert "1000x1001" in caught.value.reason


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
    with pytest.raises(RefusedError) as caught:
        inspect_upload(data, "image/png", UploadLimits(max_bytes=10**6, max_pixels=50_000_000))
    assert caught.value.kind is RefusalKind.TOO_LARGE


def test_the_default_limits_follow_what_a_cell_image_needs():
    """C-NMC cells are 450 x 450; the default allows about five times that area, not the 50
    megapixels that let a 14 KB JPEG cost 37 s and 3 GB."""
    limits = UploadLimits(max_bytes=10**7)
    assert 450 * 450 * 5 <= limits.max_pixels <= 1024 * 1024
    assert limits.max_decoded_bytes == limits.max_pixels * 4


@pytest.mark.parametrize(
    ("image", "channels", "bits"),
    [
        (np.zeros((8, 8), np.uint8), 1, 8),
        (np.zeros((8, 8, 3), np.uint8), 3, 8),
        (np.zeros((8, 8, 4), np.uint8), 4, 8),
        (np.zeros((8, 8), np.uint16), 1, 16),
        (np.zeros((8, 8, 3), np.uint16), 3, 16),
        (np.zeros((8, 8, 4), np.uint16), 4, 16),
    ],
)
@pytest.mark.parametrize("extension", [".png", ".tiff"])
def test_channels_and_bit_depth_come_from_the_header(image, channels, bits, extension):
    """Pillow reports a 16-bit colour PNG as 8-bit RGB: the PNG header itself is read."""
    data = cv2.imencode(extension, image)[1].tobytes()
    header = inspect_upload(data, None, LIMITS)
    assert (header.channels, header.bits_per_sample) == (channels, bits)
    assert header.decoded_bytes == 64 * channels * bits // 8


def test_a_16_bit_rgba_image_over_the_decoded_budget_is_refused_from_its_header():
    limits = UploadLimits(max_bytes=10**7, max_pixels=1_000_000, max_decoded_bytes=4_000_000)
    eight_bit = cv2.imencode(".png", np.zeros((900, 900, 4), np.uint8))[1].tobytes()
    sixteen_bit = cv2.imencode(".png", np.zeros((900, 900, 4), np.uint16))[1].tobytes()
    assert len(sixteen_bit) < 50_000  # small on the wire, 6.5 MB once decoded
    assert inspect_upload(eight_bit, "image/png", limits).decoded_bytes == 3_240_000
    with pytest.raises(RefusedError) as caught:
        inspect_upload(sixteen_bit, "image/png", limits)
    assert caught.value.kind is RefusalKind.TOO_LARGE
    assert "4 channels of 16 bits" in caught.value.reason


@pytest.mark.parametrize(
    "data",
    [
        cv2.imencode(".bmp", np.zeros((10, 5000, 3), np.uint8))[1].tobytes(),
        pillow_bytes("JPEG", size=(5000, 10)),
        pillow_bytes("TIFF", size=(5000, 10)),
    ],
)
def test_a_side_longer_than_the_limit_is_refused(data):
    with pytest.raises(RefusedError) as caught:
        inspect_upload(data, None, UploadLimits(max_bytes=10**7, max_side=4096))
    assert caught.value.kind is RefusalKind.TOO_LARGE
    assert "per side" in caught.value.reason


@pytest.mark.parametrize(
    ("format_name", "mode", "channels"),
    [("BMP", "1", 3), ("BMP", "L", 3), ("TIFF", "P", 4), ("PNG", "P", 4)],
)
def test_palette_and_one_bit_images_count_the_colour_they_decode_to(format_name, mode, channels):
    """OpenCV decodes these to BGR (or BGRA): the budget counts that, not the file's bits."""
    header = inspect_upload(pillow_bytes(format_name, mode=mode), None, LIMITS)
    assert header.channels == channels


def test_a_jpeg_of_many_scans_is_refused_from_its_structure():
    from bench.hostile_uploads import jpeg_scan_bomb

    limits = UploadLimits(max_bytes=20_000_000)
    header = inspect_upload(jpeg_scan_bomb(1024, 58), None, limits)  # 64 scans: accepted
    assert (header.width, header.height) == (1024, 1024)
    with pytest.raises(RefusedError) as refused:
        inspect_upload(jpeg_scan_bomb(1024, 59), None, limits)
    assert refused.value.kind is RefusalKind.TOO_LARGE
    assert "65 scans" in refused.value.reason


def test_a_tiff_tile_larger_than_its_image_is_refused_from_the_header():
    from bench.hostile_uploads import tiff_with_tile

    limits = UploadLimits(max_bytes=20_000_000)
    assert inspect_upload(tiff_with_tile(1000, 1008), None, limits).tile == (1008, 1008)
    with pytest.raises(RefusedError) as refused:
        inspect_upload(tiff_with_tile(1024, 4096), None, limits)
    assert refused.value.kind is RefusalKind.TOO_LARGE
    assert "larger than the image" in refused.value.reason
    small = UploadLimits(max_bytes=20_000_000, max_decoded_bytes=100_000)
    with pytest.raises(RefusedError, match="TIFF tiles of"):
        inspect_upload(tiff_with_tile(310, 320), None, small)  # aligned tile over the budget
