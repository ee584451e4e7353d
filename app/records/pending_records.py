"""A request's records on their way to the database, and what its answer waits for.

A record of the audit alone is durable once the journal has it fsync'd (else once committed):
the answer waits for that, and the database is written behind it. A record that joins a sample
is answered only once committed: its answer says whether the cell repeats one already in the
sample, and a signed-off sample refuses it. It gets one attempt, as a request's own write would:
refused then (a locked or absent database), or abandoned by its request before the writer
reached it, it is written on as its audit row alone, `not_answered`, and never joins the sample.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Sequence
from concurrent.futures import Future, InvalidStateError
from enum import Enum

from app.records.prediction_rows import CellResult, PredictionRecord, not_answered
from app.records.records_errors import RecordsUnavailableError
from app.records.sign_off import SampleStateError


class _Turn(Enum):
    WAITING = "waiting"
    CLAIMED = "claimed"  # its one attempt is under way
    SETTLED = "settled"
    ABANDONED = "abandoned"


class Pending:
    """One request's records (keyed), what its answer waits for (`recorded`: the cells'
    repeats, None for the audit alone), and whether the writer committed them (`written`)."""

    def __init__(self, records: Sequence[PredictionRecord]) -> None:
        self.records = list(records)
        self.joins_sample = any(record.sample_id is not None for record in self.records)
        self.for_sample = self.joins_sample
        """As submitted (`joins_sample` turns False once its records are written on alone)."""
        self.recorded: Future[list[str | None] | None] = Future()
        self.written: Future[bool] = Future()
        self._turn = _Turn.WAITING
        self._lock = threading.Lock()
        self._journalled = False

    def claim(self) -> None:
        """The writer's, before its attempt: a record its request abandoned joins no sample."""
        with self._lock:
            abandoned = self._turn is _Turn.ABANDONED
            if abandoned:
                self._written_as_not_answered()
            elif self.joins_sample:
                self._turn = _Turn.CLAIMED
        if abandoned:
            self._set(error=RecordsUnavailableError("the records could not be written in time"))

    def abandon(self) -> bool:
        """Its request is refused after all (it waited too long): True when its records will
        say so; False when its one attempt is under way or over, whose end is the answer."""
        with self._lock:
            if self._turn is not _Turn.WAITING:
                return False
            self._turn = _Turn.ABANDONED
            return True

    def settle(self, results: Sequence[CellResult]) -> None:
        """Committed: each record's cell as the transaction made it."""
        refusal = next((r for r in results if isinstance(r, SampleStateError)), None)
        if refusal is not None:
            self._set(error=refusal)
        elif self.joins_sample:
            self._set([r for r in results if not isinstance(r, SampleStateError)])
        elif not self._journalled:  # else the journal says (and the write, if it fails)
            self._set(None)
        self._finish(True)

    def refuse(self, reason: str) -> None:
        """A record that joins a sample had its one attempt and the database could not take
        it: its request is refused, and its rows are written on as not answered."""
        if not self.joins_sample:
            return
        with self._lock:
            self._written_as_not_answered()
        self._set(error=RecordsUnavailableError(f"the records could not be written: {reason}"))

    def give_up(self) -> None:
        """The writer gave up on its rows (kept for the next start): the answer of a record of
        the audit alone still stands on the journal, if the journal took it."""
        if self.joins_sample:
            self._set(error=RecordsUnavailableError("the database refused it"))
        self._finish(False)

    def _written_as_not_answered(self) -> None:
        """Under the lock."""
        self.records = [not_answered(record) for record in self.records]
        self.joins_sample = False
        self._turn = _Turn.SETTLED

    def _set(
        self, result: list[str | None] | None = None, *, error: BaseException | None = None
    ) -> None:
        with self._lock:
            if self._turn is _Turn.CLAIMED:
                self._turn = _Turn.SETTLED
        with contextlib.suppress(InvalidStateError):  # settled already, or cancelled
            if error is None:
                self.recorded.set_result(result)
            else:
                self.recorded.set_exception(error)

    def _finish(self, committed: bool) -> None:
        with contextlib.suppress(InvalidStateError):
            self.written.set_result(committed)

    def durable_once_journalled(self, journalled: Future[None] | None) -> None:
        """A record of the audit alone: durable once the journal has it (`journalled`), else
        once committed; with no journal, at once (its answer never waits for the database)."""
        if journalled is None:
            self._set(None)
            return
        self._journalled = True

        def after_write(written: Future[bool]) -> None:
            if written.result():
                self._set(None)
            else:
                self._set(error=RecordsUnavailableError("the database refused it"))

        def after_journal(future: Future[None]) -> None:
            if future.exception() is None:
                self._set(None)
            else:
                self.written.add_done_callback(after_write)

        journalled.add_done_callback(after_journal)
