"""The one count of prediction requests in flight, and its limit (LEUKOLENS_MAX_IN_FLIGHT).

The service counts a request from its admission (its upload read whole, its model known) until
it is answered; nothing else counts. The edge reads the same count to refuse early, before a
body is read when every place is taken, or once a body completes into a full server
(app/web/middleware/in_flight_limit.py), and the metrics read it as the queue's depth. Two
bodies completing at once may both pass the edge; the count's own refusal settles it.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from app.inference.work_shares import ServerBusyError


class InFlight:
    def __init__(self, limit: int | None = None) -> None:
        """`limit`: requests in flight beyond which new ones are refused; None: no limit."""
        self.limit = limit
        self.count = 0

    @property
    def full(self) -> bool:
        return self.limit is not None and self.count >= self.limit

    @contextmanager
    def admitted(self) -> Iterator[None]:
        """Hold a place until the block ends, or raise ServerBusyError at once when none is
        left (on the event loop's thread: taking a place never waits)."""
        if self.full:
            raise ServerBusyError
        self.count += 1
        try:
            yield
        finally:
            self.count -= 1
