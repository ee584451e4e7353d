"""A sample's life cycle: preliminary while cells are reviewed, final once a person signs it
off, amended when a decision changes it afterwards (with the reason), final again when signed
anew. Every sign-off is an append-only row bound to what was signed (app/records/sample_digest.py).

Once a sample is signed off, the records refuse what would change it silently: a decision without
an amendment reason, a new cell, a withdrawal. Each check, and the sign-off itself, runs inside
the sample's write turn (`ReviewRecords._writing`: a lock in this process, and on PostgreSQL one
across replicas), so that a sign-off and a decision can never pass each other unseen.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import UTC, datetime

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from app.core.domain.reviews import ReviewDecision, ReviewerSource, ReviewRecord, ReviewRequest
from app.core.domain.samples import Amendment, SampleReport, SampleStatus, SignOffRecord
from app.records import records_db, sample_digest
from app.records.sample_digest import SignOffCheck, Verification

SIGN_OFFS = records_db.sample_sign_offs
DECISIONS = records_db.review_decisions


class SampleStateError(RuntimeError):
    """The request does not fit where the sample is in its life cycle (answered 409)."""


class UnknownSampleError(LookupError):
    """No record names this sample."""


def iso_z(when: datetime) -> str:
    """A time as the API writes it (ISO 8601, UTC as Z)."""
    return when.astimezone(UTC).isoformat().replace("+00:00", "Z")


@dataclass(frozen=True)
class SignOffRow:
    record: SignOffRecord
    last_decision_id: int
    rows_sha256: str


# Opens one transaction that writes the sample, its turn taken (ReviewRecords._writing).
SampleWriting = Callable[[str], AbstractContextManager[Connection]]


def sign_off_rows(connection: Connection, sample_id: str) -> list[SignOffRow]:
    found = connection.execute(
        sa.select(SIGN_OFFS).where(SIGN_OFFS.c.sample_id == sample_id).order_by(SIGN_OFFS.c.id)
    )
    return [
        SignOffRow(
            record=SignOffRecord(
                id=row.id,
                by=row.signer,
                by_source=row.signer_source,
                time=sample_digest.utc(row.time),
                comment=row.comment,
                cells=row.cells,
                undecided_cells=row.undecided_cells,
                content_sha256=row.content_sha256,
            ),
            last_decision_id=row.last_decision_id,
            rows_sha256=row.rows_sha256,
        )
        for row in found
    ]


def _signed_state(connection: Connection, sample_id: str) -> SignOffRow | None:
    """The latest sign-off; read inside the sample's write turn, so that none slips past."""
    rows = sign_off_rows(connection, sample_id)
    return rows[-1] if rows else None


def refuse_decision_unless_amendment(connection: Connection, review: ReviewRequest) -> None:
    """After sign-off a decision must say why it changes the sample; before, it must not."""
    signed = _signed_state(connection, review.sample_id)
    if signed is None and review.amendment is not None:
        raise SampleStateError(
            f"sample {review.sample_id!r} is not signed off: a decision needs no amendment "
            "reason yet; send it without 'amendment'"
        )
    if signed is not None and review.amendment is None:
        by = signed.record
        raise SampleStateError(
            f"sample {review.sample_id!r} was signed off by {by.by} at {iso_z(by.time)}: "
            "a change needs a reason; send it again with 'amendment': '<why>'"
        )


def refuse_once_signed(connection: Connection, sample_id: str, what: str) -> None:
    """Cells and withdrawals change what was signed without a reason: refused after sign-off."""
    signed = _signed_state(connection, sample_id)
    if signed is not None:
        raise SampleStateError(
            f"sample {sample_id!r} was signed off by {signed.record.by} at "
            f"{iso_z(signed.record.time)}: {what} would change it; start a new sample, or "
            "amend a cell's decision with a reason"
        )


def life_cycle(
    sign_offs: Sequence[SignOffRow], decisions: Sequence[ReviewRecord]
) -> tuple[SampleStatus, list[Amendment]]:
    """The sample's status, and every decision made after a sign-off with what it replaced."""
    amendments: list[Amendment] = []
    latest: dict[str, ReviewDecision] = {}
    first_signed = sign_offs[0].last_decision_id if sign_offs else None
    for decision in decisions:
        if first_signed is not None and decision.id > first_signed and decision.amendment:
            amendments.append(
                Amendment(
                    decision_id=decision.id,
                    image_sha256=decision.image_sha256,
                    old_decision=latest.get(decision.image_sha256),
                    new_decision=decision.decision,
                    reviewer=decision.reviewer,
                    time=decision.time,
                    reason=decision.amendment,
                )
            )
        latest[decision.image_sha256] = decision.decision
    if not sign_offs:
        return "preliminary", amendments
    last = sign_offs[-1].last_decision_id
    changed = any(decision.id > last for decision in decisions)
    return ("amended" if changed else "final"), amendments


def annotate(connection: Connection, report: SampleReport) -> None:
    """The sample answer's status, sign-offs and amendments, read with its rows."""
    rows = sign_off_rows(connection, report.sample_id)
    report.status, report.amendments = life_cycle(rows, report.decisions)
    report.sign_offs = [row.record for row in rows]
    report.signed_off = rows[-1].record if rows else None


class SignOffs:
    """Signing a sample off and checking, later, that it is still what was signed."""

    def __init__(self, engine: Engine, writing: SampleWriting) -> None:
        self._engine = engine
        self._writing = writing

    def sign_off(
        self,
        sample_id: str,
        *,
        signer: str,
        signer_source: ReviewerSource,
        comment: str = "",
        leave_undecided: bool = False,
    ) -> SignOffRecord:
        with self._writing(sample_id) as connection:
            return self._sign_off(
                connection, sample_id, signer, signer_source, comment, leave_undecided
            )

    def _sign_off(
        self,
        connection: Connection,
        sample_id: str,
        signer: str,
        signer_source: ReviewerSource,
        comment: str,
        leave_undecided: bool,
    ) -> SignOffRecord:
        previous = _signed_state(connection, sample_id)
        rows = sample_digest.sample_rows(connection, sample_id)
        if not rows.of("sample_predictions") and not rows.of("sample_withdrawals"):
            raise UnknownSampleError(f"no image was scored for sample {sample_id!r}")
        decisions = rows.of("review_decisions")
        last_decision = max((d["id"] for d in decisions), default=0)
        if previous is not None and last_decision <= previous.last_decision_id:
            by = previous.record
            raise SampleStateError(
                f"sample {sample_id!r} is final: signed off by {by.by} at "
                f"{iso_z(by.time)}, and nothing changed since"
            )
        cells = sample_digest.live_cells(rows)
        decided = {d["image_sha256"] for d in decisions if d["image_sha256"] in cells}
        undecided = len(cells) - len(decided)
        if undecided and not leave_undecided:
            raise SampleStateError(
                f"{undecided} of {len(cells)} cells of sample {sample_id!r} "
                f"{'is' if undecided == 1 else 'are'} undecided: "
                'decide them, or sign off with "undecided_cells": "leave" (the report '
                "then states how many were left)"
            )
        max_ids = sample_digest.table_max_ids(connection)
        now = time.time()
        values = {
            "time": now,
            "sample_id": sample_id,
            "signer": signer,
            "signer_source": signer_source,
            "comment": comment,
            "cells": len(cells),
            "undecided_cells": undecided,
            "last_decision_id": max_ids["review_decisions"],
            "content_sha256": sample_digest.content_sha256(sample_id, rows),
            "rows_sha256": sample_digest.row_manifest(rows, max_ids),
        }
        new_id = connection.execute(
            SIGN_OFFS.insert().returning(SIGN_OFFS.c.id), values
        ).scalar_one()
        return SignOffRecord(
            id=int(new_id),
            by=signer,
            by_source=signer_source,
            time=sample_digest.utc(now),
            comment=comment,
            cells=len(cells),
            undecided_cells=undecided,
            content_sha256=values["content_sha256"],
        )

    def verify(self, sample_id: str) -> Verification:
        """Each sign-off's content and rows recomputed from the database as it is now."""
        with self._engine.connect() as connection:
            signed = sign_off_rows(connection, sample_id)
            sample_now = sample_digest.sample_rows(connection, sample_id)
            if not signed and not any(sample_now.tables.values()):
                raise UnknownSampleError(f"no image was scored for sample {sample_id!r}")
            checks = []
            for index, row in enumerate(signed):
                ids = {
                    table: [int(i) for i in digests]
                    for table, digests in json.loads(row.rows_sha256)["rows"].items()
                }
                form = sample_digest.manifest_form(row.rows_sha256)
                signed_now = sample_digest.rows_by_id(connection, ids)
                recomputed = sample_digest.content_sha256(sample_id, signed_now, form)
                changes = sample_digest.changed_rows(
                    row.rows_sha256, signed_now, sample_now, latest=index == len(signed) - 1
                )
                checks.append(
                    SignOffCheck(
                        sign_off_id=row.record.id,
                        signed_by=row.record.by,
                        time=row.record.time,
                        content_format=sample_digest.FORMATS[form],
                        signed_content_sha256=row.record.content_sha256,
                        recomputed_content_sha256=recomputed,
                        matches=recomputed == row.record.content_sha256 and not changes,
                        changed_rows=changes,
                    )
                )
        verdict = "not_signed" if not checks else "matches"
        if any(not check.matches for check in checks):
            verdict = "changed"
        return Verification(
            sample_id=sample_id,
            verdict=verdict,
            checked_at=sample_digest.utc(time.time()),
            sign_offs=checks,
        )
