"""Watching the connection while a request's work runs: a client that leaves stops it."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TypeVar

from app.inference.budget import WorkBudget, client_gone_refusal

T = TypeVar("T")
DISCONNECT_POLL_SECONDS = 0.05


async def unless_client_gone(
    work: Awaitable[T], is_disconnected: Callable[[], Awaitable[bool]], budget: WorkBudget
) -> T:
    """Await the work while watching the connection; a client that leaves stops it (its budget
    says so to the worker thread, which stops at its next check)."""
    task = asyncio.ensure_future(work)
    try:
        while True:
            done, _ = await asyncio.wait({task}, timeout=DISCONNECT_POLL_SECONDS)
            if done:
                return task.result()
            if await is_disconnected():
                budget.client_gone()
                task.cancel()
                raise client_gone_refusal()
    finally:
        if not task.done():
            task.cancel()
