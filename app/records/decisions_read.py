"""The read API over an existing records database that `training adapt` uses: the latest
decision per cell, read without migrating or creating anything (a file or a URL).

The database picks the latest decision of each cell (GROUP BY over its cell index) and the
rows come in slices as they are read, so a year of decisions is never held twice in memory.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import sqlalchemy as sa

from app.records import records_db

DECISIONS = records_db.review_decisions
ROWS_PER_READ = 1_000


@dataclass(frozen=True)
class LatestDecision:
    sample_id: str
    image_sha256: str
    decision: str


def latest_decisions_in(database: Path | str) -> Iterator[LatestDecision]:
    """The latest decision of each cell of an existing records database (a file or a URL),
    oldest first, read without migrating or creating anything: `training adapt` reads a lab's
    records this way. LookupError (on the first step) when there are none."""
    url = records_db.sqlite_url(database) if isinstance(database, Path) else database
    if isinstance(database, Path) and not database.is_file():
        raise LookupError(f"{database}: not found")
    engine = records_db.create_engine(url)
    try:
        if not sa.inspect(engine).has_table(DECISIONS.name):
            raise LookupError(f"{database}: no review records (no {DECISIONS.name} table)")
        latest = (
            sa.select(sa.func.max(DECISIONS.c.id))
            .group_by(DECISIONS.c.sample_id, DECISIONS.c.image_sha256)
            .scalar_subquery()
        )
        query = (
            sa.select(DECISIONS.c.sample_id, DECISIONS.c.image_sha256, DECISIONS.c.decision)
            .where(DECISIONS.c.id.in_(latest))
            .order_by(DECISIONS.c.id)
        )
        with engine.connect() as connection:
            rows = connection.execution_options(yield_per=ROWS_PER_READ).execute(query)
            for sample_id, sha, decision in rows:
                yield LatestDecision(sample_id, sha, decision)
    finally:
        engine.dispose()
