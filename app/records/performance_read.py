"""How the served model did on the lab's reviewed cells, counted by the records' database.

A cell is an image of a sample, its first live scoring (a withdrawn request's rows are not
live; later scorings of the same bytes in the sample are repeats). Each cell counts once, by
its reviewer's latest decision against the model's call at the threshold it was served at (the
stored label; ALL is positive). The counting is done in SQL: each scoring's outcome (with its
cell's latest decision, by one lookup in a covering index) and GROUP BY per sample, period,
outcome and state, so that no cell row leaves the database: what comes back is a few rows per
sample, folded into one row of counts per sample and period, all that the intervals
(resampling whole samples) need. The same definition gives the cells `training adapt` fits on
(`counted_cells`): the figures, the page, the gauges and the adaptation count the same cells.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Literal

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from app.core.card_reference import card_reference
from app.core.domain.performance import LocalPerformance
from app.core.domain.predictions import ModelRef
from app.core.local_performance import CONFUSION, COUNT_FIELDS, CountRow, local_performance
from app.core.manifest import ModelManifest
from app.records import records_db

PREDICTIONS = records_db.sample_predictions
DECISIONS = records_db.review_decisions
WITHDRAWALS = records_db.sample_withdrawals

Period = Literal["week", "month"]


@dataclass(frozen=True)
class Selection:
    """Which cells: one model version's, scored within [since, until) (seconds since the epoch;
    None: unbounded), bucketed by the week (from Monday) or month of their scoring, in UTC."""

    model_id: str
    model_version: str
    since: float | None = None
    until: float | None = None
    period: Period = "month"


def _period_start(dialect: str, seconds: sa.ColumnElement[float], period: Period) -> sa.Label:
    """The first day of the cell's week (Monday) or month, as YYYY-MM-DD in UTC."""
    if dialect == "postgresql":
        stamp = sa.func.timezone("UTC", sa.func.to_timestamp(seconds))
        start = sa.func.date_trunc(period, stamp)
        return sa.func.to_char(start, "YYYY-MM-DD").label("period")
    if period == "month":
        return sa.func.strftime("%Y-%m-01", seconds, "unixepoch").label("period")
    return sa.func.date(seconds, "unixepoch", "weekday 0", "-6 days").label("period")


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


CELL, REPEAT, WITHDRAWN_CELL = 0, 1, 2
# What a scoring counts as, one letter: the confusion's four, or why its cell is left out.
OUTCOMES = {
    "P": "tp",
    "F": "fp",
    "T": "tn",
    "N": "fn",
    "u": "unreviewed",
    "d": "decided_not_assessable",
    "a": "not_assessable_answers",
    "r": "repeats",
    "w": "withdrawn",
    "v": "other_versions",
    "x": "",
}


def _decided(version: str) -> sa.ColumnElement[str]:
    """For a cell: the outcome letter of its latest decision against the model's call,
    followed by the reviewer's name; "u" when undecided. One index lookup (the covering
    index on the cell and id), in one expression, so that it is made once per row."""
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


def _outcome(version: str) -> sa.Label:
    """What a scoring counts as (see OUTCOMES); a cell's letter is followed by the name of
    the reviewer whose decision counts."""
    return sa.case(
        (_withdrawn(PREDICTIONS), sa.case((_first_withdrawn_of_a_gone_cell(), "w"), else_="x")),
        (sa.and_(PREDICTIONS.c.repeat_of.is_not(None), _live_before()), "r"),
        (PREDICTIONS.c.model_version != version, "v"),
        (PREDICTIONS.c.assessable == 0, "a"),
        else_=_decided(version),
    ).label("outcome")


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


def _grouped(selection: Selection, dialect: str) -> sa.Select:
    """The selection's scorings counted by sample, period, outcome (with its reviewer) and
    the answer's state, in one statement."""
    conditions = [PREDICTIONS.c.model_id == selection.model_id]
    if selection.since is not None:
        conditions.append(PREDICTIONS.c.time >= selection.since)
    if selection.until is not None:
        conditions.append(PREDICTIONS.c.time < selection.until)
    period = _period_start(dialect, PREDICTIONS.c.time, selection.period)
    outcome = _outcome(selection.model_version)
    keys = (PREDICTIONS.c.sample_id, period, outcome, PREDICTIONS.c.state)
    return sa.select(*keys, sa.func.count().label("cells")).where(*conditions).group_by(*keys)


def count_rows(connection: Connection, selection: Selection) -> list[CountRow]:
    """The per-sample counts of the selection, from one SQL statement, folded here into one
    row per sample and period (no cell row leaves the database: a few rows per sample)."""
    folded: dict[tuple[str, str], dict[str, int]] = {}
    reviewers: dict[tuple[str, str], set[str]] = {}
    for row in connection.execute(_grouped(selection, connection.dialect.name)):
        key = (row.sample_id, row.period)
        counts = folded.setdefault(key, dict.fromkeys(COUNT_FIELDS, 0))
        names = reviewers.setdefault(key, set())
        outcome = OUTCOMES[row.outcome[0]]
        if not outcome:
            continue
        counts[outcome] += row.cells
        if outcome in CONFUSION:
            names.add(row.outcome[1:])
            agreement = _agreement(outcome, row.state)
            if agreement is not None:
                counts[agreement] += row.cells
    return [
        CountRow(
            sample_id=sample,
            period=period,
            reviewers=frozenset(reviewers[sample, period]),
            **counts,
        )
        for (sample, period), counts in folded.items()
    ]


def _agreement(outcome: str, state: str) -> str | None:
    """Whether the reviewer confirmed the suggestion, overruled it, or decided an
    indeterminate one (and how)."""
    decided_all = outcome in ("tp", "fn")
    if state == "indeterminate":
        return "indeterminate_all" if decided_all else "indeterminate_hem"
    suggested_all = {"suggests_all": True, "suggests_normal": False}.get(state)
    if suggested_all is None:
        return None
    return "confirmed" if suggested_all == decided_all else "overruled"


@dataclass(frozen=True)
class CountedCell:
    """One cell of the confusion: its sample, image, the model's call and the decision."""

    sample_id: str
    image_sha256: str
    label: str
    decision: str


def counted_cells(connection: Connection, selection: Selection) -> list[CountedCell]:
    """The cells behind the confusion counts, one per row: what `training adapt` fits on."""
    conditions = [PREDICTIONS.c.model_id == selection.model_id]
    if selection.since is not None:
        conditions.append(PREDICTIONS.c.time >= selection.since)
    if selection.until is not None:
        conditions.append(PREDICTIONS.c.time < selection.until)
    scored = (
        sa.select(
            PREDICTIONS.c.id,
            PREDICTIONS.c.sample_id,
            PREDICTIONS.c.image_sha256,
            PREDICTIONS.c.label,
            _outcome(selection.model_version),
        )
        .where(*conditions)
        .subquery()
    )
    statement = (
        sa.select(scored.c.sample_id, scored.c.image_sha256, scored.c.label, scored.c.outcome)
        .where(sa.func.substr(scored.c.outcome, 1, 1).in_(["P", "F", "T", "N"]))
        .order_by(scored.c.sample_id, scored.c.id)
    )
    decided = {"P": "ALL", "N": "ALL", "F": "HEM", "T": "HEM"}
    return [
        CountedCell(sample, sha, label, decided[outcome[0]])
        for sample, sha, label, outcome in connection.execute(statement)
    ]


def newest_change(connection: Connection) -> tuple[int, int, int]:
    """The newest row id of each records table: when it moves, the figures may have."""
    return tuple(  # type: ignore[return-value]
        int(connection.execute(sa.select(sa.func.coalesce(sa.func.max(t.c.id), 0))).scalar_one())
        for t in (PREDICTIONS, DECISIONS, WITHDRAWALS)
    )


def open_existing(database: Path | str) -> Engine:
    """An engine on an existing records database (a file or a URL), migrating or creating
    nothing: how `training adapt --from-records` reads a lab's records."""
    if isinstance(database, Path) and not database.is_file():
        raise LookupError(f"{database}: not found")
    url = records_db.sqlite_url(database) if isinstance(database, Path) else database
    engine = records_db.create_engine(url)
    if not sa.inspect(engine).has_table(DECISIONS.name):
        engine.dispose()
        raise LookupError(f"{database}: no review records (no {DECISIONS.name} table)")
    return engine


def epoch_seconds(moment: datetime | None) -> float | None:
    return None if moment is None else moment.timestamp()


def performance_of(
    engine: Engine,
    manifest: ModelManifest,
    *,
    period: Period = "month",
    since: datetime | None = None,
    until: datetime | None = None,
    adapt_command: str | None = None,
) -> LocalPerformance:
    """The served model's local figures: its version's cells counted here, the figures by the
    one function in app/core, against its card's reference."""
    selection = Selection(
        manifest.id, manifest.version, epoch_seconds(since), epoch_seconds(until), period
    )
    with engine.connect() as connection:
        rows = count_rows(connection, selection)
    reference, note = card_reference(manifest)
    return local_performance(
        rows,
        model=ModelRef(id=manifest.id, version=manifest.version),
        reference=reference,
        reference_note=note,
        period=period,
        since=since,
        until=until,
        adapt_command=adapt_command,
    )
