"""A local append-only journal of prediction records, on disk before a prediction is answered.

The records' database is written by one background thread (app/records/prediction_records.py),
so a record waits in memory while the database is locked, away or slow, and a process killed
then would lose it with nothing said. Each record (its audit row and, where it joins a sample,
its cell) is first appended here as one JSON line and fsync'd (one fsync for whatever queued up
meanwhile, so that concurrent requests share it); at start-up the journal is replayed into the
database (app/records/journal_replay.py), where each row's key (request id, place in the
request) makes a replay of a row already written a no-op. It is emptied whenever every
journalled record is in the database.
"""

from __future__ import annotations

import json
import logging
import os
import queue
import threading
from collections.abc import Sequence
from concurrent.futures import Future
from pathlib import Path
from typing import Any

log = logging.getLogger("leukolens.audit")
TAIL_BYTES = 1 << 16  # far longer than a row

Row = dict[str, Any]


class _Reset:
    """Queued like an append: empty the journal, keeping only these rows (given up on by the
    database, so that the next start tries them again) and these lines (not yet set aside)."""

    def __init__(self, keep: list[Row], lines: list[bytes]) -> None:
        self.keep = keep
        self.lines = lines


class PredictionJournal:
    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self._file = path.open("a+b")
        self._lock = threading.Lock()
        self._closed = False
        self._drop_partial_line()  # a crash mid-write must not glue the next row onto it
        self._queue: queue.SimpleQueue[tuple[list[Row], Future[None]] | _Reset | None] = (
            queue.SimpleQueue()
        )
        self._writer = threading.Thread(target=self._write_queued, name="leukolens-journal")
        self._writer.daemon = True
        self._writer.start()

    def append(self, rows: list[Row]) -> Future[None]:
        """Done once the rows are on disk (fsync'd); fails with OSError when the disk cannot
        take them (full, read-only, gone)."""
        synced: Future[None] = Future()
        if self._closed:
            synced.set_exception(OSError("the journal is closed"))
        else:
            self._queue.put((rows, synced))
        return synced

    def reset(self, keep: list[Row], lines: Sequence[bytes] = ()) -> None:
        """Empty it, in order with the appends queued before (see `_Reset`); never blocks."""
        self._queue.put(_Reset(keep, list(lines)))

    def _write_queued(self) -> None:
        """The journal's thread: appends grouped under one fsync, resets in their turn. A reset
        met while grouping is kept for the next turn, never queued again: behind appends made
        meanwhile it would empty the journal of rows the database may not have yet."""
        following: tuple[list[Row], Future[None]] | _Reset | None = None
        held = False
        while True:
            item = following if held else self._queue.get()
            held = False
            if item is None:
                return
            if isinstance(item, _Reset):
                self._reset(item)
                continue
            group = [item]
            while True:
                try:
                    following = self._queue.get_nowait()
                except queue.Empty:
                    break
                if not isinstance(following, tuple):
                    held = True
                    break
                group.append(following)
            self._append(group)

    def _append(self, group: list[tuple[list[Row], Future[None]]]) -> None:
        try:
            lines = b"".join(_line(row) for rows, _ in group for row in rows)
            with self._lock:
                self._file.write(lines)
                self._file.flush()
                os.fsync(self._file.fileno())
        except Exception as error:  # the thread must outlive any write
            log.error("journal %s cannot take records: %s", self.path, error)
            self._drop_partial_line()
            for _, synced in group:
                synced.set_exception(error if isinstance(error, OSError) else OSError(str(error)))
            return
        for _, synced in group:
            synced.set_result(None)

    def _reset(self, reset: _Reset) -> None:
        try:
            with self._lock:
                self._file.truncate(0)
                self._file.write(b"".join([*map(_line, reset.keep), *reset.lines]))
                self._file.flush()
                os.fsync(self._file.fileno())
        except Exception:
            log.exception("journal %s: cannot empty it", self.path)

    def _drop_partial_line(self) -> None:
        """Cut a line left unfinished by a failed write or a crash (best effort); reads only
        the file's tail."""
        try:
            with self._lock:
                size = self._file.seek(0, os.SEEK_END)
                tail_start = max(0, size - TAIL_BYTES)
                self._file.seek(tail_start)
                tail = self._file.read()
                last_newline = tail.rfind(b"\n")
                if last_newline == len(tail) - 1 or not tail:
                    return
                if last_newline < 0 and tail_start > 0:
                    return  # a single line longer than the tail: leave it to replay to skip
                self._file.truncate(tail_start + last_newline + 1)
        except OSError:
            pass

    def lines(self) -> list[bytes]:
        """Every whole line in the journal, each ending in a newline, as it is on disk."""
        with self._lock:
            self._file.flush()
            content = self.path.read_bytes()
        return [line + b"\n" for line in content.splitlines() if line.strip()]

    def rows(self) -> list[Row]:
        """Every line that parses as JSON (app/records/journal_replay.py judges the rest)."""
        rows = []
        for line in self.lines():
            try:
                rows.append(json.loads(line))
            except ValueError:
                continue
        return rows

    def clear(self) -> None:
        """Empty it now (start-up, before any append): every row it held is in the database."""
        self.rewrite([])

    def rewrite(self, keep: list[Row], lines: Sequence[bytes] = ()) -> None:
        """Hold only these rows and lines, now (start-up, before any append)."""
        self._reset(_Reset(keep, list(lines)))

    def close(self) -> None:
        """Write what is queued, then stop; later appends fail at once."""
        self._closed = True
        self._queue.put(None)
        self._writer.join()
        self._file.close()


def _line(row: Row) -> bytes:
    return json.dumps(row, separators=(",", ":")).encode() + b"\n"
