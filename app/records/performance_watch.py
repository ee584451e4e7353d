"""Keeps the local performance figures of every served model current for the Prometheus
gauges: when a decision (or any record) arrives, on this replica or another sharing the
database, the figures are counted again.

A background thread looks at the newest row id of each records table every few seconds (one
indexed lookup); only when one moved are the figures counted again, by the same function as
the API and the page. A failure is logged and retried at the next look, never raised.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence

from sqlalchemy.engine import Engine
from sqlalchemy.exc import SQLAlchemyError

from app.core.domain.performance import LocalPerformance
from app.core.manifest import ModelManifest
from app.records.performance_read import newest_change, performance_of

log = logging.getLogger("leukolens.performance")


class PerformanceWatch:
    def __init__(
        self,
        engine: Engine,
        manifests: Sequence[ModelManifest],
        publish: Callable[[LocalPerformance], None],
        every_seconds: float,
    ) -> None:
        self._engine = engine
        self._manifests = list(manifests)
        self._publish = publish
        self._every = every_seconds
        self._seen: tuple[int, ...] | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=self._watch, name="leukolens-performance", daemon=True
        )

    def start(self) -> None:
        self._thread.start()

    def refresh_if_changed(self) -> bool:
        """Count the figures again if a record arrived since the last time; whether it did."""
        with self._engine.connect() as connection:
            change = newest_change(connection)
        if change == self._seen:
            return False
        for manifest in self._manifests:
            self._publish(performance_of(self._engine, manifest))
        self._seen = change
        return True

    def _watch(self) -> None:
        while not self._stop.is_set():
            try:
                self.refresh_if_changed()
            except (SQLAlchemyError, OSError):
                log.exception("local performance figures not refreshed; retrying")
            except Exception:  # the thread must outlive any one failure
                log.exception("local performance figures: unexpected error")
            self._stop.wait(self._every)

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=30)
