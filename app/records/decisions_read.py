"""The read API over an existing records database that `training adapt` uses: the latest
decision per cell, read without migrating or creating anything (a file or a URL).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import sqlalchemy as sa

from app.records import records_db

DECISIONS = records_db.review_decisions


@dataclass(frozen=True)
class LatestDecision:
    sample_id: str
    image_sha256: str
    decision: str


def latest_decisions_in(database: Path | str) -> list[LatestDecision]:
    """The latest decisions of an existing records database (a file or a URL), read without
    migrating or creating anything: `training adapt` reads a lab's records this way."""
    url = records_db.sqlite_url(database) if isinstance(database, Path) else database
    if isinstance(database, Path) and not database.is_file():
        raise LookupError(f"{database}: not found")
    engine = records_db.create_engine(url)
    try:
        if not sa.inspect(engine).has_table(DECISIONS.name):
            raise LookupError(f"{database}: no review records (no {DECISIONS.name} table)")
        with engine.connect() as connection:
            rows = connection.execute(
                sa.select(
                    DECISIONS.c.sample_id, DECISIONS.c.image_sha256, DECISIONS.c.decision
                ).order_by(DECISIONS.c.id)
            ).all()
    finally:
        engine.dispose()
    latest = {(sample, sha): decision for sample, sha, decision in rows}
    return [LatestDecision(sample, sha, decision) for (sample, sha), decision in latest.items()]
