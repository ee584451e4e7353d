"""Dynamic micro-batching: concurrent requests for one model share an onnxruntime call.

A batch closes when it is full or when its oldest request has waited `max_wait`; it never
waits when no other request is on its way, so a lone client pays no extra latency.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import Executor
from dataclasses import dataclass

import numpy as np

from app.core.classifier import BatchOutput, OnnxCellClassifier


@dataclass(frozen=True)
class BatchedResult:
    logit: float
    probability: float
    batch_size: int
    inference_ms: float


InferenceObserver = Callable[[str, int, float], None]


class MicroBatcher:
    def __init__(
        self,
        classifier: OnnxCellClassifier,
        executor: Executor,
        *,
        max_batch: int,
        max_wait_seconds: float,
        incoming: Callable[[], int],
        observe: InferenceObserver | None = None,
    ) -> None:
        """`incoming` tells how many requests are still being prepared for this batcher."""
        self.classifier = classifier
        self.executor = executor
        self.max_batch = max_batch
        self.max_wait_seconds = max_wait_seconds
        self.incoming = incoming
        self.observe = observe
        self._pending: deque[tuple[np.ndarray, asyncio.Future[BatchedResult]]] = deque()
        self._arrived = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def infer(self, tensor: np.ndarray) -> BatchedResult:
        if self._task is None or self._task.done():
            self._arrived = asyncio.Event()
            self._task = asyncio.create_task(self._serve())
        result: asyncio.Future[BatchedResult] = asyncio.get_running_loop().create_future()
        self._pending.append((tensor, result))
        self._arrived.set()
        return await result

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    async def _collect(self) -> list[tuple[np.ndarray, asyncio.Future[BatchedResult]]]:
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
            items = await self._collect()
            batch = np.stack([tensor for tensor, _ in items])
            started = time.perf_counter()
            try:
                output: BatchOutput = await loop.run_in_executor(
                    self.executor, self.classifier.predict, batch
                )
            except Exception as error:  # the callers, not this loop, must see the failure
                for _, result in items:
                    if not result.done():
                        result.set_exception(error)
                continue
            seconds = time.perf_counter() - started
            if self.observe is not None:
                self.observe(self.classifier.manifest.id, len(items), seconds)
            for index, (_, result) in enumerate(items):
                if not result.done():
                    result.set_result(
                        BatchedResult(
                            logit=float(output.logits[index]),
                            probability=float(output.probabilities[index]),
                            batch_size=len(items),
                            inference_ms=round(seconds * 1000, 3),
                        )
                    )
