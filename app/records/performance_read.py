"""How the served model did on the lab's reviewed cells, counted by the records' database.

A cell is an image of a sample, its first live scoring (a withdrawn request's rows are not
live; later scorings of the same bytes in the sample are repeats). Each cell counts once, by
its reviewer's latest decision against the model's call at the threshold it was served at (the
stored label; ALL is positive): app/records/scoring_outcomes.py says what each scoring counts
as, and keeps it. The counting is done in SQL, a GROUP BY per sample, period, outcome and state
over the kept outcomes, so that no cell row leaves the database: what comes back is a few rows
per sample, folded into one row of counts per sample and period, all that the intervals
(resampling whole samples) need. The same definition gives the cells `training adapt` fits on
(`counted_cells`): the figures, the page, the gauges and the adaptation count the same cells.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from app.core.card_reference import card_reference
from app.core.domain.performance import LocalPerformance
from app.core.domain.predictions import ModelRef
from app.core.local_performance import CONFUSION, COUNT_FIELDS, CountRow, local_performance
from app.core.manifest import ModelManifest
from app.records import records_db, scoring_outcomes

PREDICTIONS = records_db.sample_predictions
DECISIONS = records_db.review_decisions
WITHDRAWALS = records_db.sample_withdrawals

Period = Literal["week", "month"]
DAY = scoring_outcomes.SECONDS_PER_DAY


@dataclass(frozen=True)
class Selection:
    """Which cells: one model version's, scored within [since, until) (seconds since the epoch;
    None: unbounded), bucketed by the week (from Monday) or month of their scoring, in UTC."""

    model_id: str
    model_version: str
    since: float | None = None
    until: float | None = None
    period: Period = "month"


def _period_start(
    dialect: str, seconds: sa.ColumnElement[float], period: Period
) -> sa.Label[float]:
    """The first day of the cell's week (Monday) or month, as YYYY-MM-DD in UTC."""
    if dialect == "postgresql":
        stamp = sa.func.timezone("UTC", sa.func.to_timestamp(seconds))
        start = sa.func.date_trunc(period, stamp)
        return sa.func.to_char(start, "YYYY-MM-DD").label("period")
    if period == "month":
        return sa.func.strftime("%Y-%m-01", seconds, "unixepoch").label("period")
    return sa.func.date(seconds, "unixepoch", "weekday 0", "-6 days").label("period")


# What a scoring counts as, one letter (app/records/scoring_outcomes.py): the confusion's four,
# or why its cell is left out.
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


def _selected(scoring: sa.FromClause, selection: Selection) -> list[sa.ColumnElement[bool]]:
    conditions = [scoring.c.model_id == selection.model_id]
    if selection.since is not None:
        conditions.append(scoring.c.time >= selection.since)
    if selection.until is not None:
        conditions.append(scoring.c.time < selection.until)
    return conditions


def from_the_records(selection: Selection) -> sa.FromClause:
    """The selection's scorings worked out from the records themselves: a database without
    the kept counts, a window's part day, and the check of the counts."""
    predictions = scoring_outcomes.PREDICTIONS
    return scoring_outcomes.scorings(*_selected(predictions, selection)).subquery("scoring")


def _grouped(
    selection: Selection,
    dialect: str,
    scoring: sa.FromClause,
    when: sa.ColumnElement[float],
    scorings: sa.ColumnElement[int] | None = None,
) -> sa.Select[Any]:
    """`scoring`'s rows counted by sample, period, outcome (with its reviewer) and the
    answer's state, in one statement (`when`: a row's time; `scorings`: how many scorings a
    row stands for, None: one)."""
    period = _period_start(dialect, when, selection.period)
    outcome = scoring_outcomes.outcome(scoring, selection.model_version)
    keys = (scoring.c.sample_id, period, outcome, scoring.c.state)
    cells = sa.func.count() if scorings is None else sa.func.sum(scorings)
    return sa.select(*keys, cells.label("cells")).group_by(*keys)


def _from_the_counts(selection: Selection, dialect: str) -> sa.Select[Any]:
    """The whole days of the selection (its bounds are days' first seconds), from the kept
    counts: a few rows per sample."""
    counts = scoring_outcomes.COUNTS
    conditions = [counts.c.model_id == selection.model_id]
    if selection.since is not None:
        conditions.append(counts.c.day >= selection.since)
    if selection.until is not None:
        conditions.append(counts.c.day < selection.until)
    grouped = _grouped(selection, dialect, counts, counts.c.day, counts.c.scorings)
    return grouped.where(*conditions)


def _from_the_records(selection: Selection, dialect: str) -> sa.Select[Any]:
    scoring = from_the_records(selection)
    return _grouped(selection, dialect, scoring, scoring.c.time)


def _parts(selection: Selection) -> tuple[Selection | None, list[Selection]]:
    """The selection's whole days (for the kept counts) and the parts of a day at either end
    (for the records), together the selection exactly."""
    since, until = selection.since, selection.until
    first = None if since is None else math.ceil(since / DAY) * DAY
    last = None if until is None else math.floor(until / DAY) * DAY
    if first is not None and last is not None and first >= last:
        return None, [selection]
    ends = []
    if since is not None and first is not None and since < first:
        ends.append(replace(selection, until=first))
    if until is not None and last is not None and last < until:
        ends.append(replace(selection, since=last))
    return replace(selection, since=first, until=last), ends


def count_rows(
    connection: Connection, selection: Selection, *, kept: bool = True
) -> list[CountRow]:
    """The per-sample counts of the selection, folded here into one row per sample and period
    (no cell row leaves the database: a few rows per sample). From the kept counts (a GROUP BY
    over a few rows per sample, the part days at a window's ends from the records), or not
    `kept`, all from the records."""
    dialect = connection.dialect.name
    days, ends = _parts(selection) if kept else (None, [selection])
    statements = [_from_the_records(end, dialect) for end in ends]
    if days is not None:
        statements.append(_from_the_counts(days, dialect))
    return _folded(row for statement in statements for row in connection.execute(statement))


def _folded(grouped: Iterable[sa.Row[Any]]) -> list[CountRow]:
    folded: dict[tuple[str, str], dict[str, int]] = {}
    reviewers: dict[tuple[str, str], set[str]] = {}
    for row in grouped:
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
    """The cells behind the confusion counts, one per row: what `training adapt` fits on
    (from the records themselves: a lab's database of any age)."""
    scoring = from_the_records(selection)
    scored = sa.select(
        scoring.c.id,
        scoring.c.sample_id,
        scoring.c.image_sha256,
        scoring.c.label,
        scoring_outcomes.outcome(scoring, selection.model_version),
    ).subquery()
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
