"""Fair shares of the workers: one slow kind of work cannot starve the others.

Every request used to queue for the same worker threads in arrival order, so 32 clients looping
progressive JPEGs (each waiting for a decoding process) or 16 explained and TTA requests (8
inferences or a backward pass each) kept a plain PNG waiting 7-10 s behind them. Requests are
now of one of three kinds, told from the upload's first bytes and the request's options:

- plain: one inference, a PNG or BMP decoded in the worker; the service's worker pool.
- heavy decode: JPEG or TIFF, decoded in a child process whose cost the header does not bound.
- explained: a Grad-CAM map or test-time augmentation.

Each heavy kind gets a bounded share: so many at once, on threads of its own (never the plain
ones' threads), and so many more waiting on the event loop (holding no thread); beyond those,
503 with Retry-After at once, and a request that waited out its time budget gets 503 too. The
queues are short next to LEUKOLENS_MAX_IN_FLIGHT, so heavy requests can never take every
in-flight place either.
"""

from __future__ import annotations

import asyncio
import contextvars
import math
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from dataclasses import dataclass
from enum import StrEnum
from functools import partial
from typing import TypeVar

from app.core.domain.outcomes import RefusalKind, RefusedError

T = TypeVar("T")
# The first bytes of the formats decoded in a child process (app/inference/decoder_processes.py).
JPEG_START = b"\xff\xd8"
TIFF_STARTS = (b"II*\x00", b"MM\x00*")


class ServerBusyError(Exception):
    """More requests in flight than the configured queue depth; the client should retry."""

    retry_after_seconds = 1


class WorkKind(StrEnum):
    PLAIN = "plain"
    HEAVY_DECODE = "heavy_decode"
    EXPLAINED = "explained"


def kind_of(data: bytes, *, explain: bool, tta: bool) -> WorkKind:
    """Which share a request's work comes from (its file's first bytes, its options)."""
    if explain or tta:
        return WorkKind.EXPLAINED
    if data.startswith(JPEG_START) or data.startswith(TIFF_STARTS):
        return WorkKind.HEAVY_DECODE
    return WorkKind.PLAIN


class WorkShare:
    """`slots` requests of one kind at once on threads of their own, `queue` more waiting."""

    def __init__(self, kind: WorkKind, slots: int, queue: int) -> None:
        self.kind = kind
        self.slots = max(1, slots)
        self.queue = max(0, queue)
        self.executor = ThreadPoolExecutor(self.slots, thread_name_prefix=f"leukolens-{kind}")
        self.running = 0
        self.waiting = 0
        self._free = asyncio.Semaphore(self.slots)

    @asynccontextmanager
    async def held(self, seconds: float = math.inf) -> AsyncIterator[None]:
        """A place in the share for the request's work; ServerBusyError at once when the queue
        is full, a BUSY refusal when none came free within `seconds` (its time budget)."""
        if self.running >= self.slots and self.waiting >= self.queue:
            raise ServerBusyError
        self.waiting += 1
        try:
            async with asyncio.timeout(None if math.isinf(seconds) else max(seconds, 0.0)):
                await self._free.acquire()
        except TimeoutError:
            raise RefusedError(
                RefusalKind.BUSY,
                f"the server is busy with {self.kind.replace('_', ' ')} requests: none of its "
                "places came free within the time budget; retry shortly",
            ) from None
        finally:
            self.waiting -= 1
        self.running += 1
        try:
            yield
        finally:
            self.running -= 1
            self._free.release()

    async def run(self, function: Callable[[], T]) -> T:
        """Run blocking work on this share's threads, in the caller's context."""
        context = contextvars.copy_context()
        return await asyncio.get_running_loop().run_in_executor(
            self.executor, partial(context.run, function)
        )

    def close(self) -> None:
        self.executor.shutdown(wait=True, cancel_futures=True)


@dataclass(frozen=True)
class SharePolicy:
    """Places per heavy kind: at once (their threads) and waiting."""

    explained_slots: int = 1
    heavy_decode_slots: int = 1
    heavy_queue: int = 16
