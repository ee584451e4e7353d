"""Least privilege on PostgreSQL: the servers' role reads and appends, nothing more; the
owner's role migrates and prunes. Every attempt below is made through the database driver as
the app's role, set up by deploy/postgresql/roles.sql and `migrate --grant-to`."""

import time

import psycopg
import pytest
import sqlalchemy as sa

from app.records import privileges, records_db
from app.records.privileges import may_delete
from app.records.review_records import RecordsDatabaseError, ReviewRecords
from tests.app.records.test_review_records import SHA_A, prediction, review

DAY = 86_400.0
BYPASSES = [
    "UPDATE review_decisions SET decision = 'HEM'",
    "DELETE FROM review_decisions",
    "TRUNCATE review_decisions",
    "TRUNCATE sample_predictions CASCADE",
    "DELETE FROM sample_withdrawals",
    "UPDATE sample_sign_offs SET signer = 'Mallory'",
    "DELETE FROM sample_sign_offs",
    "TRUNCATE sample_sign_offs",
    "INSERT INTO review_decisions (id, time, sample_id, request_id, image_sha256, decision, "
    "reviewer, comment) SELECT id, time, sample_id, request_id, image_sha256, 'HEM', reviewer, "
    "comment FROM review_decisions ON CONFLICT (id) DO UPDATE SET decision = 'HEM'",
    "DROP TRIGGER review_decisions_append_only_update ON review_decisions",
    "ALTER TABLE review_decisions DISABLE TRIGGER ALL",
    "DROP TABLE review_decisions CASCADE",
    "CREATE TABLE shadow (id int)",
    "DELETE FROM predictions",
    "UPDATE predictions SET probability_all = 0.01",
    "UPDATE alembic_version SET version_num = '0001'",
]


def plain(url: str) -> str:
    """The SQLAlchemy URL as psycopg takes it."""
    return url.replace("+psycopg", "")


@pytest.fixture
def decided(least_privilege_database):
    """The app's role records a cell and an ALL decision and signs the sample off, as the
    server does."""
    records = ReviewRecords(least_privilege_database.app_url, retention_days=365)
    records.add_predictions("S-1", [prediction(SHA_A, 0.9, "suggests_all")])
    records.add_decision(review(SHA_A, "ALL"))
    records.sign_offs.sign_off("S-1", signer="Dr B", signer_source="free_text")
    records.close()
    return least_privilege_database


@pytest.mark.parametrize("statement", BYPASSES)
def test_the_apps_role_can_neither_change_nor_remove_a_record(decided, statement):
    with psycopg.connect(plain(decided.app_url)) as connection:
        assert connection.execute("SELECT current_user").fetchone() == ("leukolens_app",)
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            connection.execute(statement)
    records = ReviewRecords(decided.app_url)
    sample = records.sample("S-1")
    verdict = records.sign_offs.verify("S-1").verdict
    records.close()
    (decision,) = sample.decisions
    assert (decision.decision, decision.reviewer) == ("ALL", "Dr A")
    assert (sample.status, sample.signed_off.by, verdict) == ("final", "Dr B", "matches")


def test_the_apps_role_holds_select_and_insert_alone(decided):
    with psycopg.connect(plain(decided.app_url)) as connection:
        granted = connection.execute(
            "SELECT table_name, string_agg(privilege_type, ',' ORDER BY privilege_type) "
            "FROM information_schema.role_table_grants WHERE grantee = 'leukolens_app' "
            "GROUP BY table_name ORDER BY table_name"
        ).fetchall()
    assert granted == [
        ("alembic_version", "SELECT"),
        # derived from the records, rewritten with each write: no record of its own
        ("outcome_counts", "DELETE,INSERT,SELECT,UPDATE"),
        ("predictions", "INSERT,SELECT"),
        ("review_decisions", "INSERT,SELECT"),
        ("sample_predictions", "INSERT,SELECT"),
        ("sample_sign_offs", "INSERT,SELECT"),
        # derived from the records, rewritten with each write: no record of its own
        ("sample_summaries", "DELETE,INSERT,SELECT,UPDATE"),
        ("sample_withdrawals", "INSERT,SELECT"),
    ]


def test_retention_is_the_owners_and_keeps_working_under_the_split(decided):
    """The server's role may not delete, so it never tries (and says so once); the owner's
    pruning takes the old rows and the triggers still keep the young ones."""
    owner = records_db.create_engine(decided.owner_url)
    app = records_db.create_engine(decided.app_url)
    assert may_delete(owner, "review_decisions")
    assert not may_delete(app, "review_decisions")
    app.dispose()
    old = time.time() - 400 * DAY
    with owner.begin() as connection:
        for table, row in (
            (
                records_db.sample_predictions,
                {
                    "request_id": "r-old",
                    "image_sha256": "b" * 64,
                    "model_id": "m",
                    "model_version": "1",
                    "probability_all": 0.9,
                    "label": "ALL",
                    "state": "suggests_all",
                    "assessable": 1,
                },
            ),
            (
                records_db.review_decisions,
                {
                    "request_id": "r-old",
                    "image_sha256": "b" * 64,
                    "decision": "HEM",
                    "reviewer": "Dr Old",
                    "comment": "",
                },
            ),
        ):
            connection.execute(table.insert(), {**row, "time": old, "sample_id": "OLD-1"})
    owner.dispose()
    served = ReviewRecords(decided.app_url, retention_days=365)  # its start-up prunes nothing
    assert served.sample("OLD-1") is not None
    served.close()
    pruning = ReviewRecords(decided.owner_url, retention_days=365)
    assert pruning.sample("OLD-1") is None  # the owner's start pruned it
    assert [d.decision for d in pruning.sample("S-1").decisions] == ["ALL"]
    pruning.close()


def test_a_role_that_may_not_migrate_refuses_to_start_on_a_schema_behind(postgres_roles):
    """A fresh database the owner never migrated: the app's role cannot, and says who must."""
    import uuid

    name = f"leukolens_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(postgres_roles.url("postgres"), autocommit=True) as connection:
        connection.execute(f'CREATE DATABASE "{name}" OWNER leukolens_owner')
    app_url = f"postgresql+psycopg://leukolens_app@127.0.0.1:{postgres_roles.port}/{name}"
    with pytest.raises(RecordsDatabaseError, match=r"python -m app\.records migrate"):
        ReviewRecords(app_url)


def test_sqlite_has_no_roles(tmp_path):
    engine = sa.create_engine(records_db.sqlite_url(tmp_path / "a.sqlite3"))
    assert may_delete(engine, "review_decisions")
    from app.records.privileges import grant_app_role

    with pytest.raises(ValueError, match="PostgreSQL only"):
        grant_app_role(engine, "leukolens_app")
    engine.dispose()


def test_an_upgrade_to_0009_lets_the_apps_role_keep_the_outcome_counts(postgres_roles):
    """A database granted under 0008 (before `outcome_counts`): the owner's migration alone,
    without a new --grant-to, leaves the app's role able to record a cell and a decision (each
    rewrites the sample's counts), and the counts agree with the records."""
    import uuid

    from app.records import scoring_outcomes
    from tests.app.conftest import APP_ROLE, OWNER_ROLE
    from tests.app.records.test_records_db import move_to

    name = f"leukolens_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(postgres_roles.url("postgres"), autocommit=True) as connection:
        connection.execute(f'CREATE DATABASE "{name}" OWNER {OWNER_ROLE}')
        connection.execute(f'GRANT CONNECT ON DATABASE "{name}" TO {APP_ROLE}')
    with psycopg.connect(postgres_roles.url(name), autocommit=True) as connection:
        connection.execute(f"ALTER SCHEMA public OWNER TO {OWNER_ROLE}")
        connection.execute(f"GRANT USAGE ON SCHEMA public TO {APP_ROLE}")
    base = f"postgresql+psycopg://{{}}@127.0.0.1:{postgres_roles.port}/{name}"
    owner = records_db.create_engine(base.format(OWNER_ROLE))
    move_to(owner, "0008")
    grants = [f"GRANT SELECT ON TABLE alembic_version TO {APP_ROLE}"]
    grants.append(f"GRANT SELECT, INSERT, UPDATE, DELETE ON TABLE sample_summaries TO {APP_ROLE}")
    for table in privileges.APPEND_ONLY_TABLES:  # what `migrate --grant-to` granted under 0008
        grants.append(f"GRANT SELECT, INSERT ON TABLE {table} TO {APP_ROLE}")
        grants.append(f"GRANT USAGE ON SEQUENCE {table}_id_seq TO {APP_ROLE}")
    with owner.begin() as connection:
        for grant in grants:
            connection.execute(sa.text(grant))
    records_db.migrate(owner)
    records = ReviewRecords(base.format(APP_ROLE))
    records.add_predictions("S-1", [prediction(SHA_A, 0.9, "suggests_all")])
    records.add_decision(review(SHA_A, "ALL"))
    assert records.sample("S-1").counts.decided == 1
    records.close()
    with owner.connect() as connection:
        kept = connection.execute(sa.select(scoring_outcomes.COUNTS)).all()
        worked_out = connection.execute(scoring_outcomes.counted("postgresql")).all()
    owner.dispose()
    assert [tuple(row) for row in kept] == [tuple(row) for row in worked_out]
    assert [(row.fate, row.decided, row.scorings) for row in kept] == [("", "PDr A", 1)]


def test_the_apps_role_may_mark_an_audit_row_not_answered_and_nothing_more(decided):
    """The mark of a request refused after its row was kept (migration 0010): the app's role
    may set `outcome` alone, and only to not_answered."""
    from tests.app.records.test_prediction_records import record

    records = ReviewRecords(decided.app_url)
    log = records.predictions
    kept = log.submit([record(time.time(), "r-marked")])
    kept.written.result(10)
    log.unanswered(kept)
    log.flush(10)
    assert ("r-marked", "not_answered") in [(r.request_id, r.outcome) for r in log.rows()]
    assert log.failed == 0
    records.close()
    with (
        psycopg.connect(plain(decided.app_url)) as connection,
        pytest.raises(psycopg.errors.RaiseException, match="append only"),
    ):
        connection.execute("UPDATE predictions SET outcome = 'answered'")
