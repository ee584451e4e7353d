"""A local append-only journal of audit rows, on disk before a prediction is answered.

The audit database is written by a background thread, so a row waits in memory while the
database is locked, away or slow, and a process killed then would lose it with nothing said.
Each row is first appended here as a JSON line and fsync'd (one fsync for whatever queued up
meanwhile, so that concurrent requests share it); at start-up the journal is replayed into the
database, where each row's key (request id, place in the request) makes a replay of a row
already written a no-op. It is emptied whenever every journalled row is in the database.
"""

from __future__ import annotations

import json
import logging
import os
import queue
import threading
from concurrent.futures import Future
from pathlib import Path
from typing import Any

log = logging.getLogger("leukolens.audit")

Row = dict[str, Any]


class AuditJournal:
    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self._file = path.open("a+b")
        self._lock = threading.Lock()
        self._queue: queue.SimpleQueue[tuple[list[Row], Future[None]] | None] = queue.SimpleQueue()
        self._writer = threading.Thread(target=self._write_queued, name="leukolens-journal")
        self._writer.daemon = True
        self._writer.start()

    def append(self, rows: list[Row]) -> Future[None]:
        """Done once the rows are on disk (fsync'd); fails with OSError when the disk cannot
        take them (full, read-only, gone)."""
        synced: Future[None] = Future()
        self._queue.put((rows, synced))
        return synced

    def _write_queued(self) -> None:
        while True:
            first = self._queue.get()
            if first is None:
                return
            group = [first]
            while True:
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
                if item is None:
                    self._queue.put(None)  # end after this group
                    break
                group.append(item)
            lines = b"".join(
                json.dumps(row, separators=(",", ":")).encode() + b"\n"
                for rows, _ in group
                for row in rows
            )
            try:
                with self._lock:
                    self._file.write(lines)
                    self._file.flush()
                    os.fsync(self._file.fileno())
            except OSError as error:
                log.error("audit journal %s cannot take rows: %s", self.path, error)
                self._drop_partial_line()
                for _, synced in group:
                    synced.set_exception(error)
                continue
            for _, synced in group:
                synced.set_result(None)

    def _drop_partial_line(self) -> None:
        """After a failed write, cut whatever part of it reached the file (best effort)."""
        try:
            with self._lock:
                self._file.seek(0)
                content = self._file.read()
                whole = content.rfind(b"\n") + 1
                if whole != len(content):
                    self._file.truncate(whole)
        except OSError:
            pass

    def rows(self) -> list[Row]:
        """Every whole row in the journal; a line cut short by a crash is skipped."""
        with self._lock:
            self._file.flush()
            content = self.path.read_bytes()
        rows = []
        for line in content.splitlines():
            try:
                rows.append(json.loads(line))
            except ValueError:
                log.warning("audit journal %s: skipped a line cut short", self.path)
        return rows

    def clear(self) -> None:
        """Empty it: every row it held is in the database."""
        with self._lock:
            self._file.truncate(0)
            self._file.flush()
            os.fsync(self._file.fileno())

    def close(self) -> None:
        self._queue.put(None)
        self._writer.join()
        self._file.close()
