"""Dynamic micro-batching: concurrent requests for one model share one run of the prediction
path.

A batch closes when it is full or when its oldest request has waited `max_wait`; it never
waits when no other request is on its way, so a lone client pays no extra latency. What runs a
batch is handed in (the service hands in the prediction path's `predict_prepared`): this
module only groups and distributes.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import Executor
from typing import Generic, TypeVar

Item = TypeVar("Item")
Result = TypeVar("Result")


class MicroBatcher(Generic[Item, Result]):
    def __init__(
        self,
        run_batch: Callable[[Sequence[Item]], Sequence[Result]],
        executor: Executor,
        *,
        max_batch: int,
        max_wait_seconds: float,
        incoming: Callable[[], int],
    ) -> None:
        """`run_batch` answers a batch, one result per item in order, on the executor;
        `incoming` tells how many requests are still being prepared for this batcher."""
        self.run_batch = run_batch
        self.executor = executor
        self.max_batch = max_batch
        self.max_wait_seconds = max_wait_seconds
        self.incoming = incoming
        self._pending: deque[tuple[Item, asyncio.Future[Result]]] = deque()
        self._arrived = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def submit(self, item: Item) -> Result:
        if self._task is None or self._task.done():
            self._arrived = asyncio.Event()
            self._task = asyncio.create_task(self._serve())
        result: asyncio.Future[Result] = asyncio.get_running_loop().create_future()
        self._pending.append((item, result))
        self._arrived.set()
        return await result

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    async def _collect(self) -> list[tuple[Item, asyncio.Future[Result]]]:
        """Wait for a first request, then for company while more are being prepared.

        Waiting on an event rather than on a queue's get() means a timeout can never drop a
        request that arrived at the same moment."""
        while not self._pending:
            self._arrived.clear()
            await self._arrived.wait()
        deadline = time.perf_counter() + self.max_wait_seconds
        while len(self._pending) < self.max_batch and self.incoming() > 0:
            remaining = deadline - time.perf_counter()
            if remaining <= 0:
                break
            self._arrived.clear()
            try:
                await asyncio.wait_for(self._arrived.wait(), remaining)
            except TimeoutError:
                break
        size = min(self.max_batch, len(self._pending))
        return [self._pending.popleft() for _ in range(size)]

    async def _serve(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            entries = await self._collect()
            items = [item for item, _ in entries]
            try:
                results = await loop.run_in_executor(self.executor, self.run_batch, items)
            except Exception as error:  # the callers, not this loop, must see the failure
                for _, future in entries:
                    if not future.done():
                        future.set_exception(error)
                continue
            for (_, future), result in zip(entries, results, strict=True):
                if not future.done():
                    future.set_result(result)
