"""Withdrawing an upload from its sample: only by whom it belongs to, only what exists, and
never a cell someone has decided.

A page that cancels an upload withdraws its answers (they stay in the audit). The withdrawal
is a row of its own, never a deletion, and it covers exactly the rows it names: the caller's
rows of that upload (its client `X-Request-ID`) in that sample, up to the last one recorded
when it was filed (`through_id`). Rows another identity recorded under the same id, or rows
recorded later, stay in the sample. A cell with a stored decision leaves no sample this way:
the decision would silently stop counting; "not assessable" says that in the record instead.
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from app.core.identities import Identity
from app.records import records_db

PREDICTIONS = records_db.sample_predictions
DECISIONS = records_db.review_decisions
WITHDRAWALS = records_db.sample_withdrawals


class UploadNotFoundError(LookupError):
    """No upload with that id is in the sample (never recorded, or withdrawn already)."""


class NotYourUploadError(PermissionError):
    """The upload belongs to another identity."""


class DecidedCellError(RuntimeError):
    """Withdrawing the upload would take a decided cell out of the sample."""


def withdraws() -> sa.ColumnElement[bool]:
    """A withdrawal row covers a prediction row (correlated to whichever is the outer table)."""
    return sa.and_(
        WITHDRAWALS.c.sample_id == PREDICTIONS.c.sample_id,
        WITHDRAWALS.c.client_request_id == PREDICTIONS.c.client_request_id,
        PREDICTIONS.c.client_request_id != "",
        WITHDRAWALS.c.uploader_source == PREDICTIONS.c.uploader_source,
        WITHDRAWALS.c.uploader == PREDICTIONS.c.uploader,
        sa.or_(WITHDRAWALS.c.through_id.is_(None), PREDICTIONS.c.id <= WITHDRAWALS.c.through_id),
    )


def withdrawn() -> sa.ColumnElement[bool]:
    """The outer prediction row is withdrawn from its sample."""
    return sa.exists().where(withdraws())


def withdraw(
    connection: Connection, sample_id: str, client_request_id: str, owner: Identity, now: float
) -> None:
    """File the withdrawal (inside the sample's write transaction), or refuse it."""
    live = connection.execute(
        sa.select(
            PREDICTIONS.c.id,
            PREDICTIONS.c.client_request_id,
            PREDICTIONS.c.image_sha256,
            PREDICTIONS.c.uploader,
            PREDICTIONS.c.uploader_source,
        ).where(PREDICTIONS.c.sample_id == sample_id, ~withdrawn())
    ).all()
    named = [row for row in live if row.client_request_id == client_request_id]
    if not named:
        raise UploadNotFoundError(
            f"sample {sample_id!r} holds no upload {client_request_id!r}: it was never "
            "recorded, or is withdrawn already; nothing was filed"
        )
    mine = [
        row for row in named if (row.uploader, row.uploader_source) == (owner.name, owner.source)
    ]
    if not mine:
        others = Identity(named[0].uploader, named[0].uploader_source)
        raise NotYourUploadError(
            f"upload {client_request_id!r} belongs to {others.describe()}, not to "
            f"{owner.describe()}: only whoever uploaded it can withdraw it"
        )
    mine_ids = {row.id for row in mine}
    staying = {row.image_sha256 for row in live if row.id not in mine_ids}
    leaving = {row.image_sha256 for row in mine} - staying
    decided = connection.execute(
        sa.select(DECISIONS.c.image_sha256)
        .where(DECISIONS.c.sample_id == sample_id, DECISIONS.c.image_sha256.in_(leaving))
        .limit(1)
    ).first()
    if decided is not None:
        raise DecidedCellError(
            f"a cell of upload {client_request_id!r} has a stored decision: a decided cell "
            "stays in its sample; record the decision 'not_assessable' on it instead"
        )
    connection.execute(
        WITHDRAWALS.insert(),
        {
            "time": now,
            "sample_id": sample_id,
            "client_request_id": client_request_id,
            "uploader": owner.name,
            "uploader_source": owner.source,
            "through_id": max(mine_ids),
        },
    )
