"""Decoding that can be stopped: JPEG and TIFF are decoded in child processes, killed and
replaced when a file outlives its request's budget.

A decoder call in a thread cannot be interrupted, and for these two codecs the header does not
bound the work (a JPEG's scans, a TIFF's strips, tiles and compression schemes): the header
checks refuse the known bombs, and this bounds the unknown ones. BMP and PNG cost what their
pixel count says and stay in the worker thread, without the hop.
"""

from __future__ import annotations

import os
import queue
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from multiprocessing.connection import Connection
from pathlib import Path

import numpy as np

from app.core.preprocessing import ImageDecodeError, decode_image

ISOLATED_FORMATS = frozenset({"JPEG", "TIFF"})
POLL_SECONDS = 0.05
# The folder holding the `app` package, so that a child finds the same code as its parent.
CODE_ROOT = Path(__file__).resolve().parents[2]


class DecodeTimeoutError(Exception):
    """The file was still decoding when its budget ran out; its process was killed."""


class DecodeStoppedError(Exception):
    """Asked to stop (the client left) while decoding; its process was killed."""


def _serve_decodes(connection: Connection) -> None:
    """The child: decode each file it is sent, answer with the pixels or the reason."""
    import cv2

    cv2.setNumThreads(1)
    while True:
        try:
            data = connection.recv_bytes()
        except EOFError:
            return
        try:
            image = decode_image(data)
        except ImageDecodeError as error:
            connection.send(("refused", str(error)))
            continue
        connection.send(("decoded", image.shape))
        connection.send_bytes(np.ascontiguousarray(image).reshape(-1))  # one dimension: bytes


@dataclass
class _Decoder:
    process: subprocess.Popen[bytes]
    connection: Connection


class DecoderProcesses:
    """A fixed number of decoding processes, each used by one file at a time."""

    def __init__(self, processes: int) -> None:
        self._idle: queue.LifoQueue[_Decoder] = queue.LifoQueue()
        self._all: list[_Decoder] = []
        self._lock = threading.Lock()
        for _ in range(max(1, processes)):
            self._idle.put(self._start())

    def _start(self) -> _Decoder:
        """A fresh interpreter (never a fork of a threaded server), talking over a socket."""
        parent, child = socket.socketpair()
        python_path = os.pathsep.join(filter(None, [str(CODE_ROOT), os.environ.get("PYTHONPATH")]))
        with child:
            process = subprocess.Popen(
                [sys.executable, "-m", __name__, str(child.fileno())],
                pass_fds=(child.fileno(),),
                stdin=subprocess.DEVNULL,
                env={**os.environ, "PYTHONPATH": python_path},
            )
        decoder = _Decoder(process, Connection(parent.detach()))
        with self._lock:
            self._all.append(decoder)
        return decoder

    @staticmethod
    def _stop(decoder: _Decoder) -> None:
        decoder.process.kill()
        decoder.process.wait(timeout=5)
        decoder.connection.close()

    def _replace(self, decoder: _Decoder) -> None:
        self._stop(decoder)
        with self._lock:
            self._all.remove(decoder)
        self._idle.put(self._start())

    def decode(
        self, data: bytes, seconds: float, stop: Callable[[], bool] = lambda: False
    ) -> np.ndarray:
        """The pixels as `decode_image` returns them; DecodeTimeoutError after `seconds`
        (waiting for a free process included), DecodeStoppedError once `stop()` says so."""
        deadline = time.monotonic() + max(seconds, 0.0)
        try:
            decoder = self._idle.get(timeout=max(seconds, 0.0))
        except queue.Empty:
            raise DecodeTimeoutError from None
        try:
            decoder.connection.send_bytes(data)
            while not decoder.connection.poll(
                min(POLL_SECONDS, max(deadline - time.monotonic(), 0))
            ):
                if stop() or time.monotonic() >= deadline:
                    self._replace(decoder)
                    raise DecodeStoppedError if stop() else DecodeTimeoutError
            outcome, detail = decoder.connection.recv()
            if outcome == "refused":
                self._idle.put(decoder)
                raise ImageDecodeError(detail)
            flat = np.empty(int(np.prod(detail)), np.uint8)  # one dimension: bytes = items
            if decoder.connection.recv_bytes_into(flat) != flat.size:
                raise OSError("the decoder sent fewer pixels than it announced")
            pixels = flat.reshape(detail)
        except (EOFError, OSError) as error:
            # The child died (out of memory, a crash in a codec): a refusal, and a new child.
            self._replace(decoder)
            raise ImageDecodeError("the image could not be decoded") from error
        self._idle.put(decoder)
        return pixels

    def close(self) -> None:
        with self._lock:
            decoders = list(self._all)
            self._all.clear()
        for decoder in decoders:
            self._stop(decoder)


if __name__ == "__main__":
    _serve_decodes(Connection(int(sys.argv[1])))
