"""`python -m app.records migrate [--grant-to ROLE]` and `python -m app.records prune`: the
records' maintenance, run as the tables' owner while the servers run as a least-privilege
role (app/records/privileges.py, docs/security.md).

Both read the server's settings (LEUKOLENS_DATABASE_URL, here the owner's URL, and the
retention days). `migrate` brings the schema to the newest revision and, with `--grant-to`,
leaves the app's role SELECT and INSERT alone on the records (the derived sample summaries it
may rewrite); `prune` deletes the sample records and the audit rows older than the retention
(LEUKOLENS_RETENTION_DAYS; the triggers still refuse any sample record younger than 30 days).
"""

from __future__ import annotations

import argparse
import logging
import sys

from app.records import records_db
from app.records.privileges import grant_app_role
from app.records.review_records import RecordsDatabaseError, ReviewRecords
from app.settings import RECORDS_IN_MEMORY, Settings

log = logging.getLogger("leukolens.records")


def migrate(settings: Settings, grant_to: str | None) -> str:
    location = settings.records_location
    url = records_db.sqlite_url(location) if not isinstance(location, str) else location
    engine = records_db.create_engine(url)
    try:
        records_db.migrate(engine)
        if grant_to is not None:
            grant_app_role(engine, grant_to)
    finally:
        engine.dispose()
    granted = (
        f"; {grant_to} may SELECT and INSERT the records, and rewrite the derived sample "
        "summaries, nothing else"
        if grant_to
        else ""
    )
    return f"the records' schema is current{granted}"


def prune(settings: Settings) -> str:
    records = ReviewRecords(settings.records_location)  # opened without pruning: counted here
    records.retention_days = settings.retention_days
    try:
        rows = records.prune()
    finally:
        records.close()
    return f"pruned {rows} record row(s): sample records and audit rows alike"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m app.records", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    migrating = commands.add_parser("migrate", help="bring the schema to the newest revision")
    migrating.add_argument(
        "--grant-to", metavar="ROLE", help="PostgreSQL: the app's role, left SELECT and INSERT"
    )
    commands.add_parser("prune", help="delete rows older than their retention")
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    logging.getLogger("alembic").setLevel(logging.WARNING)
    settings = Settings()
    if settings.records_location == RECORDS_IN_MEMORY:
        parser.error("LEUKOLENS_RECORDS_IN_MEMORY=true: there is no database to maintain")
    try:
        said = migrate(settings, args.grant_to) if args.command == "migrate" else prune(settings)
    except (RecordsDatabaseError, records_db.SchemaBehindError, ValueError) as error:
        print(f"python -m app.records {args.command}: {error}", file=sys.stderr)
        return 1
    print(said)
    return 0


if __name__ == "__main__":
    sys.exit(main())
