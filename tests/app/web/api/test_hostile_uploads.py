"""A matrix of malformed and hostile uploads: each gets its proper 4xx JSON error or a correct
answer, never a 5xx, and the server is healthy after all of them."""

import io
import struct
import zlib

import cv2
import numpy as np
import pytest
from PIL import Image

from bench.hostile_uploads import jpeg_scan_bomb, tiff_with_tile

OK = {200}


def png(rgb: np.ndarray) -> bytes:
    return cv2.imencode(".png", rgb)[1].tobytes()


def cell() -> np.ndarray:
    image = np.zeros((200, 200, 3), np.uint8)
    cv2.circle(image, (100, 100), 50, (180, 90, 160), -1)
    return image


def pillow(format_name: str, image: Image.Image | None = None, **save) -> bytes:
    buffer = io.BytesIO()
    (image or Image.new("RGB", (64, 64), (120, 40, 90))).save(buffer, format=format_name, **save)
    return buffer.getvalue()


def png_header_only(width: int, height: int) -> bytes:
    def chunk(kind: bytes, body: bytes) -> bytes:
        crc = struct.pack(">I", zlib.crc32(kind + body))
        return struct.pack(">I", len(body)) + kind + body + crc

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IEND", b"")


def bmp_header_only(width: int, height: int) -> bytes:
    info = struct.pack("<IiiHHIIiiII", 40, width, height, 1, 24, 0, 0, 2835, 2835, 0, 0)
    return b"BM" + struct.pack("<IHHI", 54 + len(info), 0, 0, 54) + info


def jpeg_header_claiming(width: int, height: int) -> bytes:
    data = bytearray(cv2.imencode(".jpg", cell())[1].tobytes())
    sof = data.find(b"\xff\xc0")
    data[sof + 5 : sof + 9] = struct.pack(">HH", height, width)
    return bytes(data)


def bmp_rle8_empty(width: int, height: int) -> bytes:
    """1,080 bytes: an 8-bit RLE BMP whose only pixel data is the end-of-bitmap mark."""
    palette = bytes(1024)
    info = struct.pack("<IiiHHIIiiII", 40, width, height, 1, 8, 1, 2, 2835, 2835, 256, 0)
    return b"BM" + struct.pack("<IHHI", 1080, 0, 0, 1078) + info + palette + b"\x00\x01"


def compression_bomb() -> bytes:
    """About 60 megapixels of black that compress to well under a megabyte."""
    return cv2.imencode(".png", np.zeros((7800, 7800), np.uint8), [cv2.IMWRITE_PNG_COMPRESSION, 9])[
        1
    ].tobytes()


def animated_gif() -> bytes:
    frames = [Image.new("RGB", (32, 32), (i * 40, 0, 0)) for i in range(3)]
    buffer = io.BytesIO()
    frames[0].save(buffer, format="GIF", save_all=True, append_images=frames[1:])
    return buffer.getvalue()


def multipage_tiff() -> bytes:
    pages = [Image.fromarray(cell()), Image.new("RGB", (50, 50))]
    buffer = io.BytesIO()
    pages[0].save(buffer, format="TIFF", save_all=True, append_images=pages[1:])
    return buffer.getvalue()


def float_tiff() -> bytes:
    return pillow(
        "TIFF", Image.fromarray(np.random.default_rng(0).random((16, 16), np.float32), "F")
    )


def zip_archive() -> bytes:
    import zipfile

    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("cell.png", png(cell()))
    return buffer.getvalue()


GOOD = png(cell())
CASES = {
    "empty": (b"", "image/png", {400}),
    "truncated png": (GOOD[: len(GOOD) // 2], "image/png", {400}),
    "truncated jpeg": (cv2.imencode(".jpg", cell())[1].tobytes()[:300], "image/jpeg", {400, 200}),
    "truncated bmp": (cv2.imencode(".bmp", cell())[1].tobytes()[:500], "image/bmp", {400}),
    "truncated tiff": (cv2.imencode(".tiff", cell())[1].tobytes()[:200], "image/tiff", {400}),
    "png named jpg": (GOOD, "image/jpeg", OK),
    "png sent as text/plain": (GOOD, "text/plain", OK),
    "plain text": (b"hello, this is not an image", "text/plain", {415}),
    "text as octet-stream": (b"hello, this is not an image", "application/octet-stream", {400}),
    "compression bomb": (compression_bomb(), "image/png", {413}),
    "png header claiming 100000x100000": (png_header_only(100_000, 100_000), "image/png", {413}),
    "bmp header claiming 60000x60000": (bmp_header_only(60_000, 60_000), "image/bmp", {413}),
    "jpeg header claiming 65000x65000": (jpeg_header_claiming(65_000, 65_000), "image/jpeg", {413}),
    # Within the old limits (50 megapixels), each of these cost seconds and gigabytes.
    "jpeg header claiming 7000x7000": (jpeg_header_claiming(7000, 7000), "image/jpeg", {413}),
    "rle bmp claiming 7000x7000": (bmp_rle8_empty(7000, 7000), "image/bmp", {413}),
    "16-bit rgba png 1000x1000 (8 MB decoded)": (
        cv2.imencode(".png", np.zeros((1000, 1000, 4), np.uint16))[1].tobytes(),
        "image/png",
        {413},
    ),
    "16-bit png": (
        cv2.imencode(".png", (cell().astype(np.uint16) * 257))[1].tobytes(),
        "image/png",
        OK,
    ),
    # The cost is in the codec's structure, not the pixel count.
    "progressive jpeg scan bomb (200,000 scans)": (jpeg_scan_bomb(1024, 200_000), "", {413}),
    "progressive jpeg of 64 scans": (jpeg_scan_bomb(256, 58), "image/jpeg", OK),
    "tiff with a 16368-px tile for 1024x1024": (tiff_with_tile(1024, 16368), "", {413}),
    "tiff with one 256-px tile": (tiff_with_tile(256, 256), "image/tiff", OK),
    "1x1 png": (png(np.full((1, 1, 3), 200, np.uint8)), "image/png", OK),
    "1x4000 png": (png(np.full((1, 4000, 3), 200, np.uint8)), "image/png", OK),
    "4000x1 png": (png(np.full((4000, 1, 3), 200, np.uint8)), "image/png", OK),
    "grayscale png": (png(cv2.cvtColor(cell(), cv2.COLOR_BGR2GRAY)), "image/png", OK),
    "rgba png": (png(cv2.cvtColor(cell(), cv2.COLOR_BGR2BGRA)), "image/png", OK),
    "cmyk jpeg": (pillow("JPEG", Image.new("CMYK", (64, 64), (10, 200, 30, 5))), "image/jpeg", OK),
    "float tiff": (float_tiff(), "image/tiff", {400}),
    "animated gif": (animated_gif(), "image/gif", {415}),
    "webp": (pillow("WEBP"), "image/webp", {415}),
    "ico": (pillow("ICO"), "image/x-icon", {415}),
    "multi-page tiff": (multipage_tiff(), "image/tiff", OK),
    "zip archive": (zip_archive(), "application/zip", {415}),
    "pdf": (b"%PDF-1.7\n1 0 obj << >> endobj\ntrailer << >>\n%%EOF", "application/pdf", {415}),
    "svg": (
        b'<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"/>',
        "image/svg+xml",
        {415},
    ),
    "html": (b"<html><script>alert(1)</script></html>", "text/html", {415}),
}


@pytest.mark.parametrize("name", list(CASES))
def test_each_hostile_upload_gets_its_answer(client, name):
    data, content_type, expected = CASES[name]
    response = client.post("/api/v1/predict", files={"file": ("upload", data, content_type)})
    assert response.status_code in expected, response.text
    if response.status_code >= 400:
        assert isinstance(response.json()["detail"], str)
    else:
        assert 0.0 <= response.json()["probability_all"] <= 1.0


@pytest.mark.parametrize(
    "filename",
    [
        "../../../etc/passwd.png",
        "..\\..\\windows\\system32\\cell.png",
        "细胞 ✓ ümlaut.png",
        "/absolute/path.png",
        "name\x00with-nul.png",
        "x" * 300 + ".png",
    ],
)
def test_file_names_are_echoed_never_used(client, filename):
    response = client.post(
        "/api/v1/predict/batch", files=[("files", (filename, GOOD, "image/png"))]
    )
    assert response.status_code == 200
    item = response.json()["results"][0]
    assert item["status"] == "ok"
    assert item["filename"]  # shown back as given (or as the client library encoded it)


def test_too_many_files(client):
    files = [("files", (f"{i}.png", GOOD, "image/png")) for i in range(5)]
    assert client.post("/api/v1/predict/batch", files=files).status_code == 413


def test_a_repeated_file_field_is_422_not_silently_dropped(client):
    files = [("file", ("a.png", GOOD, "image/png")), ("file", ("b.png", b"junk", "image/png"))]
    response = client.post("/api/v1/predict", files=files)
    assert response.status_code == 422
    assert "batch" in response.json()["detail"]


def test_the_server_is_healthy_after_the_matrix(client):
    for data, content_type, _ in CASES.values():
        client.post("/api/v1/predict", files={"file": ("upload", data, content_type)})
    assert client.get("/healthz").status_code == 200
    response = client.post("/api/v1/predict", files={"file": ("cell.png", GOOD, "image/png")})
    assert response.status_code == 200
