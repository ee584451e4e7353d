"""The sample list in pages: each sample's counts kept in a row of their own.

Listing samples used to read every cell and decision there was and count them in Python, so a
page cost what the whole record did. `sample_summaries` holds each sample's cells, reviewed
cells and last change; every write to a sample's rows (its cells, decisions, withdrawals, and
pruning) recomputes that sample's row in the same transaction, from the append-only tables,
by the rules of the sample's own page: each image once, withdrawn uploads left out, only
decisions on live cells counted, the last change being the latest of those. A page of the list
is then one query on the (last_change, sample_id) index, whatever the records hold. The table
is derived, never a record: `rebuild` makes it again from the rows.
"""

from __future__ import annotations

from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from app.records import records_db
from app.records.withdrawals import withdrawn

CELLS = records_db.sample_predictions
DECISIONS = records_db.review_decisions
WITHDRAWALS = records_db.sample_withdrawals
SUMMARIES = records_db.sample_summaries


@dataclass(frozen=True)
class Summary:
    sample_id: str
    cells: int
    reviewed: int
    last_change: float


def summary_of(connection: Connection, sample_id: str) -> Summary | None:
    """The sample's counts from its rows (GROUP BY over the sample's own rows, by its index);
    None when it has no live cell."""
    live = (
        sa.select(CELLS.c.image_sha256, sa.func.max(CELLS.c.time).label("scored"))
        .where(CELLS.c.sample_id == sample_id, ~withdrawn())
        .group_by(CELLS.c.image_sha256)
        .cte("live")
    )
    cells, scored = connection.execute(
        sa.select(sa.func.count(), sa.func.max(live.c.scored)).select_from(live)
    ).one()
    if not cells:
        return None
    reviewed, decided = connection.execute(
        sa.select(
            sa.func.count(sa.distinct(DECISIONS.c.image_sha256)), sa.func.max(DECISIONS.c.time)
        ).where(
            DECISIONS.c.sample_id == sample_id,
            DECISIONS.c.image_sha256.in_(sa.select(live.c.image_sha256)),
        )
    ).one()
    return Summary(sample_id, cells, reviewed, max(scored, decided or 0.0))


def refresh(connection: Connection, sample_id: str) -> None:
    """Rewrite the sample's row after a write to its records (in that write's transaction)."""
    connection.execute(SUMMARIES.delete().where(SUMMARIES.c.sample_id == sample_id))
    summary = summary_of(connection, sample_id)
    if summary is not None:
        connection.execute(SUMMARIES.insert(), vars(summary))


def samples_touched_before(connection: Connection, cutoff: float) -> set[str]:
    """Samples with rows older than `cutoff`: those a prune changes."""
    return {
        sample_id
        for table in (CELLS, DECISIONS, WITHDRAWALS)
        for sample_id in connection.execute(
            sa.select(table.c.sample_id).where(table.c.time < cutoff).distinct()
        ).scalars()
    }


def page(connection: Connection, *, limit: int, offset: int) -> tuple[list[Summary], int]:
    """One page, the most recently changed first, and how many samples there are: one query
    (a second, for the count alone, only past the last page)."""
    total = sa.select(sa.func.count()).select_from(SUMMARIES).scalar_subquery()
    rows = connection.execute(
        sa.select(
            SUMMARIES.c.sample_id,
            SUMMARIES.c.cells,
            SUMMARIES.c.reviewed,
            SUMMARIES.c.last_change,
            total.label("total"),
        )
        .order_by(SUMMARIES.c.last_change.desc(), SUMMARIES.c.sample_id.desc())
        .limit(limit)
        .offset(offset)
    ).all()
    if rows:
        count = rows[0].total
    else:
        count = connection.execute(sa.select(sa.func.count()).select_from(SUMMARIES)).scalar_one()
    return [Summary(r.sample_id, r.cells, r.reviewed, r.last_change) for r in rows], count


def rebuild(connection: Connection) -> None:
    """Every sample's row again from the records (a check, or a repair by hand)."""
    connection.execute(SUMMARIES.delete())
    for sample_id in connection.execute(sa.select(CELLS.c.sample_id).distinct()).scalars().all():
        refresh(connection, sample_id)
