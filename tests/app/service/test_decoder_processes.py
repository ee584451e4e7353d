import os
import signal
import time

import cv2
import numpy as np
import pytest

from app.core.preprocessing import ImageDecodeError, decode_image
from app.service.decoder_processes import DecoderProcesses, DecodeStoppedError, DecodeTimeoutError
from bench.hostile_uploads import jpeg_scan_bomb

SLOW_JPEG = jpeg_scan_bomb(1024, 200_000)  # about 15 s of decoding on one core


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
    child = decoders._all[0].process.pid
    assert decoders.decode(cv2.imencode(".jpg", cell_image())[1].tobytes(), 30).shape == (
        120,
        90,
        3,
    )
    assert decoders._all[0].process.pid == child


def test_a_decode_past_its_budget_is_killed_and_its_child_replaced(decoders):
    child = decoders._all[0].process
    started = time.monotonic()
    with pytest.raises(DecodeTimeoutError):
        decoders.decode(SLOW_JPEG, 0.5)
    assert time.monotonic() - started < 5  # not the 15 s the decode would take
    assert child.poll() is not None  # killed
    good = cv2.imencode(".jpg", cell_image())[1].tobytes()
    assert decoders.decode(good, 30).shape == (120, 90, 3)  # by a new child
    assert decoders._all[0].process.pid != child.pid


def test_a_decode_stops_when_asked(decoders):
    asked = time.monotonic() + 0.3
    with pytest.raises(DecodeStoppedError):
        decoders.decode(SLOW_JPEG, 60, stop=lambda: time.monotonic() > asked)


def test_a_child_that_dies_is_a_refusal_and_is_replaced(decoders):
    os.kill(decoders._all[0].process.pid, signal.SIGKILL)
    decoders._all[0].process.wait()
    with pytest.raises(ImageDecodeError):
        decoders.decode(cv2.imencode(".jpg", cell_image())[1].tobytes(), 30)
    assert decoders.decode(cv2.imencode(".jpg", cell_image())[1].tobytes(), 30).shape[2] == 3


def test_close_ends_every_child():
    pool = DecoderProcesses(2)
    children = [decoder.process for decoder in pool._all]
    pool.close()
    assert all(child.poll() is not None for child in children)
