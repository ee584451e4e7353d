"""A file part just over the per-file limit was once written to TMPDIR before its 413, and
a batch of one large part filled a 64 MiB /tmp. Every part is now counted as it arrives."""

import os
import subprocess
import threading
from functools import partial

import cv2
import httpx
import numpy as np
import pytest
from fastapi import FastAPI, Request

from app.web.middleware.part_size_limit import PartSizeLimitMiddleware, PartSizes
from bench.hostile_round3 import UsageWatch, form_head, raw_post, status_of, tmpfs_used

MIB = 1024 * 1024


def make_app(limit: int = 1000) -> FastAPI:
    app = FastAPI()

    @app.post("/upload")
    async def upload(request: Request) -> dict[str, list[int]]:
        async with request.form() as form:
            return {"sizes": [len(await value.read()) for _, value in form.multi_items()]}  # type: ignore[union-attr]

    app.add_middleware(PartSizeLimitMiddleware, max_part_bytes=limit, paths={"/upload"})
    return app


MULTIPART = [("content-type", "multipart/form-data; boundary=b")]


@pytest.fixture
def call(asgi_post):
    return partial(asgi_post, complete=True)


def test_a_part_past_the_limit_is_refused_with_the_chunk_that_passes_it(call):
    chunks = [form_head()] + [b"x" * 400] * 50  # 20 kB in one part, limit 1000
    pulled, status, body = call(make_app(), "/upload", chunks, MULTIPART)
    assert status == 413
    assert pulled == 4  # the head, then 400 + 400 + 400: the third passes 1000
    assert "exceeds 1000 bytes" in body["detail"]


def test_parts_within_the_limit_pass_each_on_its_own_count(call):
    one = form_head() + b"x" * 900 + b"\r\n"
    two = form_head(filename="y.png") + b"y" * 900 + b"\r\n--b--\r\n"
    _, status, body = call(make_app(), "/upload", [one, two], MULTIPART)
    assert (status, body) == (200, {"sizes": [900, 900]})


def test_a_malformed_body_is_left_to_the_applications_parser(call):
    _, status, _ = call(make_app(), "/upload", [b"no boundary here" * 10], MULTIPART)
    assert status == 400


def test_part_sizes_restart_with_each_part():
    sizes = PartSizes(b"b", 10)
    assert sizes.feed(form_head() + b"x" * 10 + b"\r\n" + form_head() + b"y" * 10)
    assert not sizes.feed(b"y")


# -- a real server with TMPDIR on a small tmpfs --------------------------------------------


@pytest.fixture
def small_tmp(tmp_path):
    """A 64 MiB tmpfs (the manifest's emptyDir for /tmp), mounted for the test: root only."""
    if os.geteuid() != 0:
        pytest.skip("mounting a 64 MiB tmpfs for TMPDIR needs root")
    mount = tmp_path / "tmp"
    mount.mkdir()
    try:
        subprocess.run(
            ["mount", "-t", "tmpfs", "-o", "size=64m", "tmpfs", str(mount)],
            check=True,
            capture_output=True,
        )
    except (OSError, subprocess.CalledProcessError) as error:
        pytest.skip(f"cannot mount a tmpfs here ({error})")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def test_no_upload_writes_to_tmpdir_and_a_small_tmp_is_never_filled(upload_server, small_tmp):
    """The issue's cases on a real server whose TMPDIR is the manifest's 64 MiB emptyDir."""
    upload_server.start(TMPDIR=str(small_tmp), LEUKOLENS_MAX_BATCH_FILES="8")
    port = upload_server.port
    idle = tmpfs_used(small_tmp)
    limit = 20 * MIB
    with UsageWatch(small_tmp) as watch:
        # A part 30 KiB over the limit, the body still open: refused before the body ends.
        just_over = raw_post(port, "/api/v1/predict", form_head(), limit + 30 * 1024, finish=False)
        # A batch of one 79 MB part: once 400 with a full disk.
        batch = raw_post(port, "/api/v1/predict/batch", form_head("files"), 79_000_000, finish=True)
        # Four such batches at once.
        answers: list[bytes] = []
        threads = [
            threading.Thread(
                target=lambda: answers.append(
                    raw_post(
                        port, "/api/v1/predict/batch", form_head("files"), 60 * MIB, finish=True
                    )
                )
            )
            for _ in range(4)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        # 200 MB in one chunked part.
        chunked = raw_post(port, "/api/v1/predict", form_head(), 200_000_000, finish=True)
    assert status_of(just_over) == 413
    assert status_of(batch) == 413
    assert [status_of(answer) for answer in answers] == [413] * 4
    assert status_of(chunked) == 413
    assert watch.peak - idle < MIB  # nothing spooled: not even the 20 MiB under the limit
    assert list(small_tmp.iterdir()) == []


def test_a_read_only_tmpdir_serves_uploads_up_to_the_limit(upload_server, small_tmp):
    subprocess.run(["mount", "-o", "remount,ro", str(small_tmp)], check=True)
    upload_server.start(TMPDIR=str(small_tmp), LEUKOLENS_MAX_UPLOAD_BYTES=str(4 * MIB))
    noise = np.random.default_rng(0).integers(0, 255, (900, 900, 3), dtype=np.uint8)
    ok, png = cv2.imencode(".png", noise)
    assert ok
    assert 2 * MIB < len(png) < 4 * MIB  # above Starlette's default spooling threshold
    answer = httpx.post(
        f"http://127.0.0.1:{upload_server.port}/api/v1/predict",
        files={"file": ("noise.png", png.tobytes())},
        timeout=60,
    )
    assert answer.status_code == 200, answer.text
