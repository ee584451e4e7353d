"""Decoding that can be stopped: JPEG and TIFF are decoded in child processes, killed and
replaced when a file outlives its request's budget or its client.

A decoder call in a thread cannot be interrupted, and for these two codecs the header does not
bound the work (a JPEG's scans, a TIFF's strips, tiles and compression schemes): the header
checks refuse the known bombs, and this bounds the unknown ones. BMP and PNG cost what their
pixel count says and stay in the worker thread, without the hop.

The child is a fresh interpreter with a minimal environment (no keys, no database URL), first
in line for the kernel's out-of-memory killer, and speaks in plain bytes (never pickles), so a
codec that misbehaves costs one refused file and a new child.
"""

from __future__ import annotations

import contextlib
import logging
import os
import queue
import socket
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from multiprocessing.connection import Connection
from pathlib import Path

import numpy as np

from app.core.image_decoding import ImageDecodeError, decode_image

log = logging.getLogger("leukolens.decoding")

ISOLATED_FORMATS = frozenset({"JPEG", "TIFF"})
POLL_SECONDS = 0.05
# The folder holding the `app` package, so that a child finds the same code as its parent.
CODE_ROOT = Path(__file__).resolve().parents[2]
# What a child inherits: enough to start Python and load its libraries, nothing secret.
INHERITED = ("PATH", "LANG", "LC_ALL", "LD_LIBRARY_PATH", "PYTHONHOME", "TMPDIR", "HOME")
# Answers: a status byte, then height, width, channels (decoded) or a UTF-8 reason (refused).
DECODED, REFUSED = b"D", b"R"
SHAPE = struct.Struct("<III")


class DecodeTimeoutError(Exception):
    """The file was still decoding when its budget ran out; its process was killed."""


class DecodeStoppedError(Exception):
    """Asked to stop (the client left) while decoding; its process was killed."""


class DecodersBusyError(Exception):
    """No decoding process became free within the budget: the server's doing, not the file's."""


def _serve_decodes(connection: Connection) -> None:
    """The child: decode each file it is sent, answer with the pixels or the reason."""
    import cv2

    cv2.setNumThreads(1)
    with contextlib.suppress(OSError):  # a runaway decode should cost this child, not the server
        Path("/proc/self/oom_score_adj").write_text("1000")
    while True:
        try:
            data = connection.recv_bytes()
        except EOFError:
            return
        try:
            image = np.ascontiguousarray(decode_image(data))
        except ImageDecodeError as error:
            connection.send_bytes(REFUSED + str(error).encode())
            continue
        connection.send_bytes(DECODED + SHAPE.pack(*image.shape))
        connection.send_bytes(image.reshape(-1).data)  # one dimension: its length is its bytes


def _wait_in_slices(
    ready: Callable[[float], bool],
    deadline: float,
    stop: Callable[[], bool],
    late: type[Exception],
) -> None:
    """Ask `ready(seconds)` in short slices until it says yes; DecodeStoppedError once `stop()`
    says so, `late` at the deadline."""
    while not ready(min(POLL_SECONDS, max(deadline - time.monotonic(), 0))):
        if stop():
            raise DecodeStoppedError
        if time.monotonic() >= deadline:
            raise late


@dataclass
class _Decoder:
    process: subprocess.Popen[bytes]
    connection: Connection


class DecoderProcesses:
    """A fixed number of decoding processes, each used by one file at a time. A slot whose
    child died, or could not be started, is started again when next taken."""

    def __init__(self, processes: int) -> None:
        self._idle: queue.LifoQueue[_Decoder | None] = queue.LifoQueue()
        self._lock = threading.Lock()
        self._running: dict[int, _Decoder] = {}
        for _ in range(max(1, processes)):
            self._idle.put(self._start_or_none())

    def _start(self) -> _Decoder:
        """A fresh interpreter (never a fork of a threaded server), talking over a socket."""
        parent, child = socket.socketpair()
        environment = {name: os.environ[name] for name in INHERITED if name in os.environ}
        python_path = [str(CODE_ROOT), os.environ.get("PYTHONPATH", "")]
        environment["PYTHONPATH"] = os.pathsep.join(filter(None, python_path))
        with child:
            process = subprocess.Popen(
                [sys.executable, "-m", __name__, str(child.fileno())],
                pass_fds=(child.fileno(),),
                stdin=subprocess.DEVNULL,
                env=environment,
            )
        decoder = _Decoder(process, Connection(parent.detach()))
        with self._lock:
            self._running[process.pid] = decoder
        return decoder

    def _start_or_none(self) -> _Decoder | None:
        try:
            return self._start()
        except OSError:
            log.exception("a decoding process could not be started; retried when next needed")
            return None

    def _stop(self, decoder: _Decoder) -> None:
        with self._lock:
            self._running.pop(decoder.process.pid, None)
        with contextlib.suppress(OSError):
            decoder.process.kill()
        with contextlib.suppress(subprocess.TimeoutExpired):
            decoder.process.wait(timeout=5)
        decoder.connection.close()

    def _take(self, deadline: float, stop: Callable[[], bool]) -> _Decoder:
        taken: list[_Decoder | None] = []

        def took_one(seconds: float) -> bool:
            try:
                taken.append(self._idle.get(timeout=seconds))
            except queue.Empty:
                return False
            return True

        _wait_in_slices(took_one, deadline, stop, DecodersBusyError)
        decoder = taken[0]
        if decoder is not None and decoder.process.poll() is None:
            return decoder
        if decoder is not None:
            self._stop(decoder)  # died while idle
        fresh = self._start_or_none()
        if fresh is None:
            self._idle.put(None)
            raise ImageDecodeError("the server could not start a decoder; retry shortly")
        return fresh

    def decode(
        self, data: bytes, seconds: float, stop: Callable[[], bool] = lambda: False
    ) -> np.ndarray:
        """The pixels as `decode_image` returns them; DecodeTimeoutError after `seconds`,
        DecodeStoppedError once `stop()` says so, DecodersBusyError when no process was free."""
        deadline = time.monotonic() + max(seconds, 0.0)
        decoder = self._take(deadline, stop)
        keep = False
        try:
            decoder.connection.send_bytes(data)
            _wait_in_slices(decoder.connection.poll, deadline, stop, DecodeTimeoutError)
            answer = decoder.connection.recv_bytes()
            if answer[:1] == REFUSED:
                keep = True
                raise ImageDecodeError(answer[1:].decode(errors="replace"))
            if answer[:1] != DECODED or len(answer) != 1 + SHAPE.size:
                raise ImageDecodeError("the decoder answered out of turn")
            shape = SHAPE.unpack(answer[1:])
            flat = np.empty(int(np.prod(shape)), np.uint8)  # one dimension: bytes = items
            if decoder.connection.recv_bytes_into(flat) != flat.size:
                raise ImageDecodeError("the decoder sent fewer pixels than it announced")
            keep = True
            return flat.reshape(shape)
        except (EOFError, OSError) as error:
            # The child died (out of memory, a crash in a codec): a refusal, and a new child.
            raise ImageDecodeError("the image could not be decoded") from error
        finally:
            if keep:
                self._idle.put(decoder)
            else:  # whatever happened, this child is in an unknown state: a new one
                self._stop(decoder)
                self._idle.put(self._start_or_none())

    def close(self) -> None:
        with self._lock:
            decoders = list(self._running.values())
        for decoder in decoders:
            self._stop(decoder)


if __name__ == "__main__":
    _serve_decodes(Connection(int(sys.argv[1])))
