"""Reading the records for a page on a thread of their own.

A page of the sample list, or one sample's page, is a short read; sixteen at once through the
shared thread pool took sixteen threads, the GIL in turn and both cores from the predictions
beside them (a prediction then took 2-2.5 times its idle latency). Reads for pages now queue
for one thread of their own, on the event loop, holding nothing while they wait: a crowd of
readers costs at most one core, and the predictions keep the other.
"""

from __future__ import annotations

import asyncio
import contextvars
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from typing import ParamSpec, TypeVar

P = ParamSpec("P")
T = TypeVar("T")
READ_THREADS = 1


class RecordReads:
    def __init__(self, threads: int = READ_THREADS) -> None:
        self.executor = ThreadPoolExecutor(threads, thread_name_prefix="leukolens-reads")

    async def run(self, function: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        """`function(*args, **kwargs)` on the readers' thread, in the caller's context."""
        context = contextvars.copy_context()
        call = partial(context.run, function, *args, **kwargs)
        return await asyncio.get_running_loop().run_in_executor(self.executor, call)

    def close(self) -> None:
        self.executor.shutdown(wait=True, cancel_futures=True)
