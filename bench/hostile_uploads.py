"""What hostile requests cost a real server: time and memory over idle, bytes read.

    python -m bench.hostile_uploads [--source DIR] [--label after] [--skip-large-bodies]

Starts `python -m app` from DIR (default: this checkout) on loopback with its default
settings and the bundled models, and sends one case at a time:
- the first round's small files whose headers claim 7000 x 7000 (JPEG, 16-bit PNG, RLE BMP,
  deflate TIFF), and the worst images that pass today's limits (noise at the pixel limit,
  16-bit and RGBA at the decoded-size budget);
- a 1 GB body, declared and chunked, and one without the API key on a server that has one;
- two worst-case requests whose clients give up, then a normal request.
Per case: status, seconds, and peak resident memory over the idle server (VmHWM, reset before
each case through /proc/PID/clear_refs); for the large bodies, how many bytes the client got
into the connection before the answer came (an upper bound on what the server read: it
includes the kernel's socket buffers).
Linux only. Compare rows within one run: the machine is shared and noisy.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import socket
import struct
import subprocess
import sys
import tempfile
import time
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path

import cv2
import httpx
import numpy as np
from PIL import Image

from bench.common import machine, write_result

ROOT = Path(__file__).parents[1]
GOOD_CELL = ROOT / "tests/fixtures/cnmc/training_data/fold_1/all/UID_16_11_1_all.png"
GIGABYTE = 1 << 30
CHUNK = 1 << 20
CASE_TIMEOUT_SECONDS = 120
API_KEY = "bench-key"


# -- the images ---------------------------------------------------------------------------


def jpeg_claiming(width: int, height: int) -> bytes:
    """A small real JPEG whose frame header claims another size; the decoder fills the rest."""
    cell = np.zeros((64, 64, 3), np.uint8)
    cv2.circle(cell, (32, 32), 20, (180, 90, 160), -1)
    data = bytearray(cv2.imencode(".jpg", cell)[1].tobytes())
    sof = data.find(b"\xff\xc0")
    data[sof + 5 : sof + 9] = struct.pack(">HH", height, width)
    return bytes(data)


def png_zeros(width: int, height: int, channels: int, dtype: type) -> bytes:
    image = np.zeros((height, width, channels), dtype)
    return cv2.imencode(".png", image, [cv2.IMWRITE_PNG_COMPRESSION, 9])[1].tobytes()


def png_noise(width: int, height: int) -> bytes:
    noise = np.random.default_rng(0).integers(0, 256, (height, width, 3), dtype=np.uint8)
    return cv2.imencode(".png", noise, [cv2.IMWRITE_PNG_COMPRESSION, 1])[1].tobytes()


def bmp_rle8_empty(width: int, height: int) -> bytes:
    """An 8-bit RLE BMP of the given size whose pixel data is only the end-of-bitmap mark."""
    palette = b"".join(struct.pack("<BBBB", i, i, i, 0) for i in range(256))
    pixels = b"\x00\x01"
    offset = 14 + 40 + len(palette)
    info = struct.pack("<IiiHHIIiiII", 40, width, height, 1, 8, 1, len(pixels), 2835, 2835, 256, 0)
    return (
        b"BM" + struct.pack("<IHHI", offset + len(pixels), 0, 0, offset) + info + palette + pixels
    )


def tiff_deflate_zeros(width: int, height: int) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (width, height)).save(buffer, format="TIFF", compression="tiff_adobe_deflate")
    return buffer.getvalue()


def jpeg_segments(data: bytes) -> Iterator[tuple[int, int, int]]:
    """(marker, start, end) of each segment; a scan's end includes its entropy-coded data."""
    position = 2
    while position < len(data) - 1 and data[position + 1] != 0xD9:
        marker = data[position + 1]
        end = position + 2 + struct.unpack(">H", data[position + 2 : position + 4])[0]
        if marker == 0xDA:
            while (end := data.index(b"\xff", end)) and data[end + 1] in {0, *range(0xD0, 0xD8)}:
                end += 2
        yield marker, position, end
        position = end


def jpeg_scan_bomb(side: int, repeats: int) -> bytes:
    """A progressive greyscale JPEG of black whose one tiny AC scan (12 bytes) is repeated:
    every header is plain, and every repeat is a pass over all the image's coefficients."""
    buffer = io.BytesIO()
    Image.new("L", (side, side)).save(buffer, "JPEG", progressive=True)
    data = buffer.getvalue()
    scans = [(start, end) for marker, start, end in jpeg_segments(data) if marker == 0xDA]
    ac_start, ac_end = next(
        (start, end) for start, end in scans if data[start + 5 + 2 * data[start + 4]] > 0
    )
    return data[: scans[-1][1]] + data[ac_start:ac_end] * repeats + b"\xff\xd9"


def tiff_with_tile(side: int, tile: int) -> bytes:
    """A side x side 8-bit grey deflate TIFF stored as one tile of tile x tile pixels: the
    decoder allocates the tile, whatever the image's size."""
    pixels = zlib.compress(bytes(tile * tile), 1)
    long, short = 4, 3
    tags = [
        (256, long, side), (257, long, side), (258, short, 8), (259, short, 8),
        (262, short, 1), (277, short, 1), (322, long, tile), (323, long, tile),
        (324, long, 8), (325, long, len(pixels)),
    ]  # fmt: skip
    entries = b"".join(
        struct.pack("<HHII", tag, kind, 1, value)
        if kind == long
        else struct.pack("<HHIHH", tag, kind, 1, value, 0)
        for tag, kind, value in tags
    )
    ifd = struct.pack("<H", len(tags)) + entries + struct.pack("<I", 0)
    return b"II*\x00" + struct.pack("<I", 8 + len(pixels)) + pixels + ifd


IMAGE_CASES: dict[str, Callable[[], bytes]] = {
    "jpeg header 7000x7000": lambda: jpeg_claiming(7000, 7000),
    "png 16-bit RGBA zeros 7000x7000": lambda: png_zeros(7000, 7000, 4, np.uint16),
    "png 16-bit RGB zeros 7000x7000": lambda: png_zeros(7000, 7000, 3, np.uint16),
    "bmp RLE8 7000x7000": lambda: bmp_rle8_empty(7000, 7000),
    "tiff deflate 7000x7000": lambda: tiff_deflate_zeros(7000, 7000),
    # The worst that the new defaults accept (1024 x 1024; 4 MiB decoded).
    "jpeg header 1024x1024": lambda: jpeg_claiming(1024, 1024),
    "png noise RGB 1024x1024": lambda: png_noise(1024, 1024),
    "png 16-bit RGB zeros 836x836": lambda: png_zeros(836, 836, 3, np.uint16),
    "png 16-bit RGBA zeros 724x724": lambda: png_zeros(724, 724, 4, np.uint16),
    "png 8-bit RGBA zeros 1024x1024": lambda: png_zeros(1024, 1024, 4, np.uint8),
    "bmp RLE8 1024x1024": lambda: bmp_rle8_empty(1024, 1024),
    "tiff deflate 1024x1024": lambda: tiff_deflate_zeros(1024, 1024),
    # Second round: the cost is in the codec's structure, not in the pixel count.
    "jpeg scan bomb 1024x1024 2.4 MB": lambda: jpeg_scan_bomb(1024, 200_000),
    "jpeg 64 scans 1024x1024": lambda: jpeg_scan_bomb(1024, 58),
    "tiff 16368-px tile 1024x1024": lambda: tiff_with_tile(1024, 16368),
    "tiff 1024-px tile 1024x1024": lambda: tiff_with_tile(1024, 1024),
}


# -- the server ---------------------------------------------------------------------------


class Server:
    def __init__(self, source: Path, environment: dict[str, str]) -> None:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        self.audit_dir = tempfile.TemporaryDirectory()
        env = {
            **os.environ,
            "PYTHONPATH": str(source),
            "LEUKOLENS_AUDIT_LOG_PATH": f"{self.audit_dir.name}/audit.sqlite3",
            **environment,
        }
        self.process = subprocess.Popen(
            [sys.executable, "-m", "app", "--port", str(self.port), "--log-level", "warning"],
            cwd=source,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        self.base = f"http://127.0.0.1:{self.port}"
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{self.base}/readyz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                if self.process.poll() is not None:
                    raise RuntimeError("server exited") from None
            time.sleep(0.1)
        else:
            raise RuntimeError("server not ready in 120 s")
        # One normal request first, so that idle memory includes what every request needs.
        self.predict(GOOD_CELL.read_bytes(), "cell.png")
        time.sleep(0.5)
        self.idle_rss = self.status("VmRSS")

    def status(self, field: str) -> int:
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
        raise KeyError(field)

    def reset_peak(self) -> None:
        Path(f"/proc/{self.process.pid}/clear_refs").write_text("5")

    def predict(self, data: bytes, name: str, headers: dict[str, str] | None = None) -> int:
        response = httpx.post(
            f"{self.base}/api/v1/predict",
            files={"file": (name, data)},
            headers=headers,
            timeout=CASE_TIMEOUT_SECONDS,
        )
        return response.status_code

    def measure(self, name: str, send: Callable[[], object]) -> dict[str, object]:
        time.sleep(0.5)
        self.reset_peak()
        started = time.perf_counter()
        try:
            outcome = send()
        except (httpx.HTTPError, OSError) as error:
            outcome = f"{type(error).__name__}: {error}"[:160]
        seconds = time.perf_counter() - started
        time.sleep(0.3)  # whatever the server still does for a gone client shows in the peak
        row = {
            "case": name,
            "outcome": outcome,
            "seconds": round(seconds, 3),
            "peak_mb_over_idle": round((self.status("VmHWM") - self.idle_rss) / 1e6, 1),
            "healthy_after": self.healthy(),
        }
        print(row, flush=True)
        return row

    def healthy(self) -> bool:
        try:
            return httpx.get(f"{self.base}/healthz", timeout=30).status_code == 200
        except httpx.HTTPError:
            return False

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=60)
        self.audit_dir.cleanup()


# -- the large bodies ---------------------------------------------------------------------


def raw_upload(port: int, total: int, *, declared: bool, headers: str = "") -> str:
    """Send a multipart upload of `total` bytes over a raw socket; stop as soon as the server
    answers or closes. Returns the status line and how much the client managed to send."""
    boundary = "bench"
    head = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="big.png"\r\n'
        "Content-Type: image/png\r\n\r\n"
    ).encode()
    framing = f"Content-Length: {total}\r\n" if declared else "Transfer-Encoding: chunked\r\n"
    request = (
        f"POST /api/v1/predict HTTP/1.1\r\nHost: 127.0.0.1\r\n{headers}"
        f"Content-Type: multipart/form-data; boundary={boundary}\r\n{framing}\r\n"
    ).encode()
    sent = 0
    with socket.create_connection(("127.0.0.1", port), timeout=CASE_TIMEOUT_SECONDS) as sock:
        sock.sendall(request)
        sock.setblocking(False)
        answer = b""
        deadline = time.monotonic() + CASE_TIMEOUT_SECONDS
        for chunk in _body_chunks(head, total):
            payload = f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n" if not declared else chunk
            view = memoryview(payload)
            while view:
                answer += _poll(sock)
                if answer or time.monotonic() > deadline:
                    return _summary(answer, sent)
                try:
                    written = sock.send(view)
                except BlockingIOError:
                    time.sleep(0.001)
                    continue
                except OSError:
                    return _summary(answer, sent)
                view = view[written:]
                sent += written
        if not declared:
            sock.send(b"0\r\n\r\n")
        sock.setblocking(True)
        answer += sock.recv(4096)
        return _summary(answer, sent)


def _body_chunks(head: bytes, total: int) -> Iterator[bytes]:
    yield head
    remaining = total - len(head)
    block = b"\0" * CHUNK
    while remaining > 0:
        yield block[: min(CHUNK, remaining)]
        remaining -= CHUNK


def _poll(sock: socket.socket) -> bytes:
    try:
        return sock.recv(4096)
    except BlockingIOError:
        return b""
    except OSError:
        return b"<reset>"


def _summary(answer: bytes, sent: int) -> str:
    status = answer.split(b"\r\n", 1)[0].decode("latin-1") or "no answer"
    return f"{status}; client sent {sent / 1e6:.1f} MB"


# -- the run ------------------------------------------------------------------------------


def run(source: Path, skip_large_bodies: bool) -> list[dict[str, object]]:
    rows: list[dict[str, object]] = []
    server = Server(source, {})
    try:
        rows.append({"case": "idle", "rss_mb": round(server.idle_rss / 1e6, 1)})
        for name, make in IMAGE_CASES.items():
            data = make()
            rows.append(
                server.measure(f"{name} ({len(data)} B)", lambda d=data: server.predict(d, "x"))
            )
        rows.append(
            server.measure("two gone clients, then a normal request", lambda: _gone_clients(server))
        )
        if not skip_large_bodies:
            for declared in (True, False):
                label = "1 GB body, " + ("Content-Length" if declared else "chunked")
                rows.append(
                    server.measure(
                        label, lambda d=declared: raw_upload(server.port, GIGABYTE, declared=d)
                    )
                )
    finally:
        server.stop()
    if not skip_large_bodies:
        keyed = Server(source, {"LEUKOLENS_API_KEY": API_KEY})
        try:
            rows.append(
                keyed.measure(
                    "1 GB body without the API key",
                    lambda: raw_upload(keyed.port, GIGABYTE, declared=True),
                )
            )
        finally:
            keyed.stop()
    return rows


def _gone_clients(server: Server) -> str:
    """Two clients send the worst accepted image and hang up at once; time the next request."""
    worst = png_noise(1024, 1024)
    for _ in range(2):
        with contextlib.suppress(httpx.TimeoutException):
            httpx.post(
                f"{server.base}/api/v1/predict", files={"file": ("x.png", worst)}, timeout=0.2
            )
    started = time.perf_counter()
    status = server.predict(GOOD_CELL.read_bytes(), "cell.png")
    return f"{status}; the normal request took {time.perf_counter() - started:.2f} s"


def run_from_command_line(
    description: str,
    name: str,
    run_cases: Callable[[Path, bool], list[dict[str, object]]],
    skip_flag: str,
    skip_help: str,
) -> None:
    """`--source DIR --label L [skip_flag]`: serve DIR's app, run the cases, write NAME-L."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--source", type=Path, default=ROOT, help="checkout whose app/ to serve")
    parser.add_argument("--label", default="after", help=f"result name: {name}-LABEL")
    parser.add_argument(skip_flag, dest="skip", action="store_true", help=skip_help)
    args = parser.parse_args()
    rows = run_cases(args.source.resolve(), args.skip)
    path = write_result(
        f"{name}-{args.label}", {"source": str(args.source), "machine": machine(), "rows": rows}
    )
    print(f"wrote {path}")


def main() -> None:
    run_from_command_line(
        __doc__ or "", "hostile_uploads", run, "--skip-large-bodies", "no 1 GB bodies"
    )


if __name__ == "__main__":
    main()
