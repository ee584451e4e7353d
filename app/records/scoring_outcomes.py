"""What each scoring counts as in the local performance figures, and the table that keeps it.

A cell is an image of a sample, its first live scoring (a withdrawn request's rows are not
live; later scorings of the same bytes in the sample are repeats). Each scoring's `fate` says
whether it is its cell's ("": counted, by the served version, as not assessable or by its
cell's latest decision), a repeat ("r"), the withdrawn cell ("w": the first withdrawn scoring
of a cell with no live one) or left out ("x"); `decided` is the letter of its cell's latest
decision against the model's call at the threshold it was served at (the stored label; ALL is
positive), followed by the reviewer's name, "u" when undecided. `outcome` puts them together
for one model version (app/records/performance_read.py).

Both were worked out for every scoring at every request: a lookup of the cell's latest decision
per row and a GROUP BY over the whole table, 0.5 s on 200,000 cells. `outcome_counts` now keeps
how many scorings of each sample count as what, per UTC day (a few rows per sample), rewritten
for the sample in the transaction of every write that can change them: its new cells
(app/records/prediction_rows.py), its decisions, withdrawals and pruning
(app/records/review_records.py). The figures are then one GROUP BY over those rows; a window
that starts or ends within a day counts that day's part from the records
(app/records/performance_read.py). The table is derived, never a record: `scorings` works the
same out from the records themselves (what `training adapt` reads from a lab's database of any
age), and `rebuild` makes the table again from them.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from app.records import records_db

PREDICTIONS = records_db.sample_predictions
DECISIONS = records_db.review_decisions
WITHDRAWALS = records_db.sample_withdrawals
COUNTS = records_db.outcome_counts
SECONDS_PER_DAY = 86_400


def _withdrawn(scoring: sa.FromClause) -> sa.ColumnElement[bool]:
    """The page withdrew the request that made this scoring (a cancelled upload)."""
    return sa.and_(
        scoring.c.client_request_id != "",
        sa.tuple_(scoring.c.sample_id, scoring.c.client_request_id).in_(
            sa.select(WITHDRAWALS.c.sample_id, WITHDRAWALS.c.client_request_id)
        ),
    )


def _same_cell(other: sa.FromClause) -> sa.ColumnElement[bool]:
    return sa.and_(
        other.c.sample_id == PREDICTIONS.c.sample_id,
        other.c.image_sha256 == PREDICTIONS.c.image_sha256,
    )


def _live_before() -> sa.ColumnElement[bool]:
    """A live scoring of the same cell came earlier: this one is a repeat. The writer marks a
    scoring that had none before it (`repeat_of` empty, under the sample's lock), so this is
    looked up only for a repeat, in case the one it repeats was withdrawn since."""
    earlier = PREDICTIONS.alias("earlier")
    return sa.exists().where(
        _same_cell(earlier), earlier.c.id < PREDICTIONS.c.id, ~_withdrawn(earlier)
    )


def _first_withdrawn_of_a_gone_cell() -> sa.ColumnElement[bool]:
    """The first withdrawn scoring of a cell with no live one: the cell counts as withdrawn."""
    earlier = PREDICTIONS.alias("earlier")
    any_live = sa.exists().where(_same_cell(earlier), ~_withdrawn(earlier))
    withdrawn_before = sa.exists().where(
        _same_cell(earlier), earlier.c.id < PREDICTIONS.c.id, _withdrawn(earlier)
    )
    return sa.and_(~any_live, ~withdrawn_before)


def fate() -> sa.ColumnElement[str]:
    """A scoring of `sample_predictions`: "w", "x", "r" or "" (see the module's docstring)."""
    return sa.case(
        (_withdrawn(PREDICTIONS), sa.case((_first_withdrawn_of_a_gone_cell(), "w"), else_="x")),
        (sa.and_(PREDICTIONS.c.repeat_of.is_not(None), _live_before()), "r"),
        else_="",
    )


def decided() -> sa.ColumnElement[str]:
    """For a scoring of `sample_predictions`: the outcome letter of its cell's latest decision
    against the model's call, followed by the reviewer's name; "u" when undecided. One index
    lookup (the covering index on the cell and id)."""
    decision, label = DECISIONS.c.decision, PREDICTIONS.c.label
    letter = sa.case(
        (decision == "not_assessable", "d"),
        (decision == "ALL", sa.case((label == "ALL", "P"), else_="N")),
        else_=sa.case((label == "ALL", "F"), else_="T"),
    )
    latest = (
        sa.select(letter.concat(DECISIONS.c.reviewer))
        .where(_same_cell(DECISIONS))
        .order_by(DECISIONS.c.id.desc())
        .limit(1)
        .scalar_subquery()
    )
    return sa.func.coalesce(latest, "u")


def outcome(scoring: sa.FromClause, version: str) -> sa.Label[str]:
    """What a scoring of `scoring` (`scorings`, or the kept counts) counts as for `version`:
    its fate, else "v" (another version's), "a" (a not-assessable answer), or its cell's
    decision letter and reviewer."""
    return sa.case(
        (scoring.c.fate != "", scoring.c.fate),
        (scoring.c.model_version != version, "v"),
        (scoring.c.assessable == 0, "a"),
        else_=scoring.c.decided,
    ).label("outcome")


def scorings(*conditions: sa.ColumnElement[bool]) -> sa.Select[Any]:
    """Each scoring of `sample_predictions` that meets `conditions`, with its fate and its
    cell's decision, worked out from the records."""
    return sa.select(
        PREDICTIONS.c.id,
        PREDICTIONS.c.sample_id,
        PREDICTIONS.c.image_sha256,
        PREDICTIONS.c.model_id,
        PREDICTIONS.c.model_version,
        PREDICTIONS.c.time,
        PREDICTIONS.c.state,
        PREDICTIONS.c.assessable,
        PREDICTIONS.c.label,
        fate().label("fate"),
        decided().label("decided"),
    ).where(*conditions)


def day_of(
    dialect: str, seconds: sa.ColumnElement[float]
) -> sa.ColumnElement[float] | sa.ColumnElement[int]:
    """The first second of the UTC day a time falls on."""
    if dialect == "postgresql":
        return sa.func.floor(seconds / SECONDS_PER_DAY) * SECONDS_PER_DAY
    return sa.cast(seconds / SECONDS_PER_DAY, sa.Integer) * SECONDS_PER_DAY  # times are > 0


def counted(dialect: str, *conditions: sa.ColumnElement[bool]) -> sa.Select[Any]:
    """The rows of `outcome_counts` for the scorings that meet `conditions`."""
    scored = scorings(*conditions).subquery("scored")
    keys = (
        scored.c.sample_id,
        scored.c.model_id,
        scored.c.model_version,
        day_of(dialect, scored.c.time).label("day"),
        scored.c.state,
        scored.c.assessable,
        scored.c.fate,
        scored.c.decided,
    )
    return sa.select(*keys, sa.func.count().label("scorings")).group_by(*keys)


def refresh(connection: Connection, sample_id: str) -> None:
    """Rewrite the sample's counts after a write to its records, in that write's transaction."""
    connection.execute(COUNTS.delete().where(COUNTS.c.sample_id == sample_id))
    fill(connection, PREDICTIONS.c.sample_id == sample_id)


def fill(connection: Connection, *conditions: sa.ColumnElement[bool]) -> None:
    columns = [column.name for column in COUNTS.columns]
    statement = counted(connection.dialect.name, *conditions)
    connection.execute(COUNTS.insert().from_select(columns, statement))


def rebuild(connection: Connection) -> None:
    """Every sample's counts again from the records (records written around the server, a
    check, or a repair by hand)."""
    connection.execute(COUNTS.delete())
    fill(connection)
