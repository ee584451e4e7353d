"""Start-up: what a previous process journalled reaches the database, one line costing only
itself.

Each line of the journal is validated as a prediction record (types, ranges, no field too many
or missing): its audit row, and where it joined a sample, its cell's fields. Such a record was
answered only once committed, so its replay writes its audit row alone
(app/records/prediction_rows.py: `replayed`). A line that is not a record (`{"a":1}`, `null`,
a probability written as a string, a torn or binary line), or a row the database refuses for
its content (a constraint, a value its driver cannot send), is set aside in a quarantine file
beside the journal, with the reason, a log line and a count
(`leukolens_audit_journal_quarantined_total`); every other row, before it and after it, is
written. A database that is away, locked or out of disk is no fault of a row: those rows are
kept for the next start, as before.
"""

from __future__ import annotations

import base64
import json
import logging
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator
from sqlalchemy import exc

log = logging.getLogger("leukolens.audit")

Row = dict[str, Any]
ROWS_PER_TRANSACTION = 1_000
LARGEST_ITEM = 2**31 - 1  # an INTEGER on either engine
SHA256_HEX = r"^[0-9a-f]{64}$"


class JournalRow(BaseModel):
    """A record as the journal holds it: PredictionRecord's fields, strictly (a string is no
    number, nothing is null where the server never writes one), each within what the server
    writes. Lines written before records joined their samples hold the audit row's alone."""

    model_config = ConfigDict(strict=True, extra="forbid", allow_inf_nan=False)

    time: Annotated[float, Field(ge=0)]
    request_id: Annotated[str, Field(min_length=1, max_length=200)]
    image_sha256: Annotated[str, Field(pattern=SHA256_HEX)]
    model_id: Annotated[str, Field(min_length=1, max_length=200)]
    model_version: Annotated[str, Field(max_length=200)]
    probability_all: Annotated[float, Field(ge=0, le=1)]
    label: Literal["ALL", "HEM"]
    latency_ms: Annotated[float, Field(ge=0)]
    client_request_id: Annotated[str, Field(max_length=200)] = ""
    item: Annotated[int, Field(ge=0, le=LARGEST_ITEM)] = 0
    outcome: Literal["answered", "not_answered"] = "answered"
    sample_id: Annotated[str, Field(min_length=1, max_length=200)] | None = None
    state: Annotated[str, Field(max_length=200)] = ""
    assessable: bool = False
    threshold: Annotated[float, Field(ge=0, le=1)] | None = None
    tta: bool | None = None
    warnings: Annotated[str, Field(max_length=2000)] = ""
    uploader: Annotated[str, Field(max_length=200)] = ""
    uploader_source: Annotated[str, Field(max_length=200)] = "unrecorded"
    mark: bool | None = None
    """Earlier lines say nothing: a `not_answered` one was always a mark."""

    @model_validator(mode="after")
    def _marks_of_earlier_lines(self) -> Self:
        if self.mark is None:
            self.mark = self.outcome == "not_answered"
        return self


def quarantine_path(journal: Path) -> Path:
    return journal.with_name(journal.name + ".quarantine")


def as_row(line: bytes) -> Row:
    """The line's row; ValueError (ValidationError is one) saying why it is none."""
    return JournalRow.model_validate(json.loads(line)).model_dump()


def line_of(row: Row) -> bytes:
    return json.dumps(row, separators=(",", ":")).encode() + b"\n"


def refused_for_its_content(error: Exception) -> bool:
    """The database refused this row for what it holds, not for its own state: a constraint,
    a value out of its range, a value its driver cannot send. Anything else (locked, away,
    out of disk, a missing table) is the database's, and the row waits for the next start."""
    if isinstance(error, exc.IntegrityError | exc.DataError):
        return True
    if isinstance(error, exc.DBAPIError):
        return False
    return isinstance(error, exc.StatementError | ValueError | TypeError | OverflowError)


@dataclass
class Replay:
    written: int = 0
    set_aside: list[tuple[bytes, str]] = field(default_factory=list)
    """Lines that are no row, or rows the database refused, with the reason."""
    kept: list[Row] = field(default_factory=list)
    """Rows the database could not take now: for the next start."""


def replay(lines: Sequence[bytes], write: Callable[[list[Row]], None]) -> Replay:
    """Write every row of `lines` in order with `write` (one transaction per call); see the
    module's docstring for what becomes of the others."""
    result = Replay()
    rows: list[tuple[Row, bytes]] = []
    for line in lines:
        try:
            rows.append((as_row(line), line))
        except (ValueError, RecursionError) as error:  # RecursionError: nested past reason
            result.set_aside.append((line, _reason(error)))
    for start in range(0, len(rows), ROWS_PER_TRANSACTION):
        chunk = rows[start : start + ROWS_PER_TRANSACTION]
        try:
            write([row for row, _ in chunk])
            result.written += len(chunk)
            continue
        except Exception as error:  # judged below: the database's fault, or one row's
            if not refused_for_its_content(error):
                result.kept = [row for row, _ in rows[start:]]
                return result
        for position, (row, line) in enumerate(chunk):  # one row at a time, to find it
            try:
                write([row])
                result.written += 1
            except Exception as error:
                if not refused_for_its_content(error):
                    result.kept = [row for row, _ in chunk[position:] + rows[start + len(chunk) :]]
                    return result
                result.set_aside.append((line, f"refused by the database: {_reason(error)}"))
    return result


def _reason(error: Exception) -> str:
    if isinstance(error, ValidationError):
        return "; ".join(
            f"{'.'.join(map(str, detail['loc'])) or 'line'}: {detail['msg']}"
            for detail in error.errors(include_url=False)
        )
    return str(getattr(error, "orig", None) or error).strip().splitlines()[0][:300]


def set_aside(path: Path, lines: Sequence[tuple[bytes, str]]) -> None:
    """Append each line with its reason to the quarantine file, fsync'd; OSError when the
    disk cannot take them (then they stay in the journal)."""
    now = time.time()
    entries = []
    for line, reason in lines:
        entry: dict[str, object] = {"quarantined_at": now, "reason": reason}
        try:
            entry["line"] = line.decode("utf-8")
        except UnicodeDecodeError:
            entry["line_base64"] = base64.b64encode(line).decode()
        entries.append(json.dumps(entry, separators=(",", ":")).encode() + b"\n")
    with path.open("ab") as file:
        file.write(b"".join(entries))
        file.flush()
        os.fsync(file.fileno())


def settle(
    journal: Path, replayed: Replay, on_quarantined: Callable[[int], None] | None
) -> list[bytes]:
    """Set aside what the replay refused, with a log line each and the count; returns the
    lines the quarantine file could not take (they stay in the journal)."""
    quarantine = quarantine_path(journal)
    if replayed.set_aside:
        try:
            set_aside(quarantine, replayed.set_aside)
        except OSError as error:
            log.error(
                "audit journal %s: %d line(s) that are no row could not be set aside in %s "
                "(%s); kept in the journal",
                journal,
                len(replayed.set_aside),
                quarantine,
                error,
            )
            return [line for line, _ in replayed.set_aside]
        for _, reason in replayed.set_aside:
            log.error(
                "audit journal %s: a line that is no row was set aside in %s: %s",
                journal,
                quarantine,
                reason,
            )
        if on_quarantined is not None:
            on_quarantined(len(replayed.set_aside))
    if replayed.written:
        log.info("audit journal %s: %d row(s) replayed", journal, replayed.written)
    if replayed.kept:
        log.error(
            "audit journal %s: %d row(s) could not be written; kept for the next start",
            journal,
            len(replayed.kept),
        )
    return []
