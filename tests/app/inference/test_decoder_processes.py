import contextlib
import os
import signal
import threading
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from app.core.image_decoding import ImageDecodeError, decode_image
from app.inference.decoder_processes import DecoderProcesses, DecodeStoppedError, DecodeTimeoutError
from bench.hostile_uploads import jpeg_scan_bomb

SLOW_JPEG = jpeg_scan_bomb(1024, 200_000)  # about 15 s of decoding on one core


def only_child(pool: DecoderProcesses):
    (decoder,) = pool._running.values()
    return decoder.process


@pytest.fixture
def decoders():
    pool = DecoderProcesses(1)
    yield pool
    pool.close()


def cell_image() -> np.ndarray:
    image = np.zeros((120, 90, 3), np.uint8)
    cv2.circle(image, (45, 60), 30, (180, 90, 160), -1)
    return image


@pytest.mark.parametrize("extension", [".jpg", ".tiff", ".png"])
def test_a_child_decodes_exactly_what_the_thread_would(decoders, extension):
    data = cv2.imencode(extension, cell_image())[1].tobytes()
    decoded = decoders.decode(data, 30)
    assert decoded.dtype == np.uint8
    assert decoded.flags.writeable
    np.testing.assert_array_equal(decoded, decode_image(data))


def test_an_unreadable_file_is_refused_and_the_child_stays(decoders):
    with pytest.raises(ImageDecodeError):
        decoders.decode(b"\xff\xd8 not really a jpeg", 30)
    child = only_child(decoders).pid
    assert decoders.decode(cv2.imencode(".jpg", cell_image())[1].tobytes(), 30).shape == (
        120,
        90,
        3,
    )
    assert only_child(decoders).pid == child


def test_a_decode_past_its_budget_is_killed_and_its_child_replaced(decoders):
    child = only_child(decoders)
    started = time.monotonic()
    with pytest.raises(DecodeTimeoutError):
        decoders.decode(SLOW_JPEG, 0.5)
    assert time.monotonic() - started < 5  # not the 15 s the decode would take
    assert child.poll() is not None  # killed
    good = cv2.imencode(".jpg", cell_image())[1].tobytes()
    assert decoders.decode(good, 30).shape == (120, 90, 3)  # by a new child
    assert only_child(decoders).pid != child.pid


def test_a_decode_stops_when_asked(decoders):
    asked = time.monotonic() + 0.3
    with pytest.raises(DecodeStoppedError):
        decoders.decode(SLOW_JPEG, 60, stop=lambda: time.monotonic() > asked)


def test_a_child_that_died_while_idle_is_replaced_before_the_next_file(decoders):
    dead = only_child(decoders)
    os.kill(dead.pid, signal.SIGKILL)
    dead.wait()
    assert decoders.decode(cv2.imencode(".jpg", cell_image())[1].tobytes(), 30).shape[2] == 3
    assert only_child(decoders).pid != dead.pid


def test_an_unexpected_error_mid_decode_replaces_the_child_and_keeps_the_pool(
    decoders, monkeypatch
):
    """A MemoryError (or any other) between taking a child and giving it back must not lose
    the slot: the pool would shrink until every JPEG is refused."""
    first = only_child(decoders)
    monkeypatch.setattr(np, "empty", lambda *_, **__: (_ for _ in ()).throw(MemoryError()))
    with pytest.raises(MemoryError):
        decoders.decode(cv2.imencode(".jpg", cell_image())[1].tobytes(), 30)
    monkeypatch.undo()
    assert decoders.decode(cv2.imencode(".jpg", cell_image())[1].tobytes(), 30).shape[2] == 3
    assert only_child(decoders).pid != first.pid


def test_no_free_decoder_is_the_servers_busy_answer_not_the_files(decoders):
    from app.inference.decoder_processes import DecodersBusyError

    busy = threading.Thread(target=lambda: _quietly(decoders.decode, SLOW_JPEG, 3))
    busy.start()
    time.sleep(0.3)
    with pytest.raises(DecodersBusyError):
        decoders.decode(cv2.imencode(".jpg", cell_image())[1].tobytes(), 0.5)
    busy.join()


def test_a_child_gets_no_secret_of_the_server(decoders, monkeypatch):
    monkeypatch.setenv("LEUKOLENS_API_KEY", "secret")
    pool = DecoderProcesses(1)
    try:
        pool.decode(cv2.imencode(".jpg", cell_image())[1].tobytes(), 30)  # started for sure
        environment = Path(f"/proc/{only_child(pool).pid}/environ").read_bytes()
    finally:
        pool.close()
    assert b"LEUKOLENS_API_KEY" not in environment
    assert b"PYTHONPATH" in environment


def _quietly(function, *arguments):
    with contextlib.suppress(Exception):
        function(*arguments)


def test_close_ends_every_child():
    pool = DecoderProcesses(2)
    children = [decoder.process for decoder in pool._running.values()]
    pool.close()
    assert all(child.poll() is not None for child in children)
