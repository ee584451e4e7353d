"""A time budget per request, and a stop signal for clients that have gone.

A decode or a preprocessing step in a worker thread cannot be interrupted, so the work checks
its budget between steps: past the deadline, or once the client has disconnected, the next
`check()` refuses and the thread is free for the next request. The budget is an argument of
the prediction path, handed in by whoever runs it (the web layer makes one per request; the
command line and Ray run without a deadline).
"""

from __future__ import annotations

import math
import threading
import time

from app.core.domain.outcomes import RefusalKind, RefusedError

WAITING = "waiting for a worker"


def client_gone_refusal() -> RefusedError:
    """The refusal of work whose client has left, wherever the work notices it."""
    return RefusedError(RefusalKind.CLIENT_GONE, "the client closed the request")


class WorkBudget:
    def __init__(self, seconds: float = math.inf) -> None:
        """`seconds` per file; infinite (the default): no deadline, and no client to leave."""
        self.seconds = seconds
        self.deadline = time.monotonic() + seconds
        self._gone = threading.Event()

    @property
    def limited(self) -> bool:
        return math.isfinite(self.seconds)

    def client_gone(self) -> None:
        self._gone.set()

    def restart(self) -> None:
        """A new file of the same request gets the whole budget again (a batch's budget is
        per file, so one slow file cannot spend its neighbours' time)."""
        self.deadline = time.monotonic() + self.seconds

    def seconds_left(self, default: float) -> float:
        """What remains of the budget; `default` without a deadline."""
        return self.deadline - time.monotonic() if self.limited else default

    @property
    def is_client_gone(self) -> bool:
        """Whether the client has left. Unlike `check`, the clock does not count: work already
        paid for is still answered late."""
        return self._gone.is_set()

    def check(self, step: str) -> None:
        """Stop here when the budget is spent or the client has gone; else a no-op."""
        if self._gone.is_set():
            raise client_gone_refusal()
        if time.monotonic() <= self.deadline:
            return
        if step == WAITING:
            raise RefusedError(
                RefusalKind.BUSY,
                f"the server is busy: no worker was free within {self.seconds:g} s",
            )
        raise RefusedError(
            RefusalKind.OVER_BUDGET,
            f"{step} took longer than the {self.seconds:g} s budget per request; "
            "send a smaller image",
        )
