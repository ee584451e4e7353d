"""`python -m app.records migrate --grant-to ROLE` and `prune`: the owner's maintenance, run
apart from the servers (deploy/kubernetes' Job and CronJob, deploy/compose.yaml)."""

import subprocess
import sys
import uuid

import psycopg
import pytest

from app.records.__main__ import main
from app.records.review_records import ReviewRecords
from tests.app.records.test_review_records import SHA_A, insert_old, prediction, review

DAY = 86_400.0


def run(*args: str, **environment: str) -> subprocess.CompletedProcess:
    import os

    return subprocess.run(
        [sys.executable, "-m", "app.records", *args],
        env={**os.environ, **environment},
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_the_owner_migrates_and_grants_then_the_app_serves_as_its_role(postgres_roles):
    name = f"leukolens_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(postgres_roles.url("postgres"), autocommit=True) as connection:
        connection.execute(f'CREATE DATABASE "{name}" OWNER leukolens_owner')
    base = f"postgresql+psycopg://{{}}@127.0.0.1:{postgres_roles.port}/{name}"
    done = run(
        "migrate",
        "--grant-to",
        "leukolens_app",
        LEUKOLENS_DATABASE_URL=base.format("leukolens_owner"),
    )
    assert done.returncode == 0, done.stderr
    assert "leukolens_app may SELECT and INSERT the records" in done.stdout
    records = ReviewRecords(base.format("leukolens_app"))
    records.add_predictions("S-1", [prediction(SHA_A, 0.9, "suggests_all")])
    records.add_decision(review(SHA_A, "ALL"))
    assert records.sample("S-1").counts.decided == 1
    records.close()


def test_prune_deletes_what_the_retention_says_and_keeps_the_young(tmp_path):
    path = tmp_path / "audit.sqlite3"
    records = ReviewRecords(path)
    records.add_predictions("S-1", [prediction(SHA_A, 0.9, "suggests_all")])
    records.add_decision(review(SHA_A, "ALL"))
    records.close()
    insert_old(path, 200, "OLD-1", "b" * 64, "r-old")
    done = run("prune", LEUKOLENS_AUDIT_LOG_PATH=str(path), LEUKOLENS_RETENTION_DAYS="90")
    assert done.returncode == 0, done.stderr
    assert "pruned 2 record row(s)" in done.stdout
    records = ReviewRecords(path)
    assert records.sample("OLD-1") is None
    assert records.sample("S-1").counts.decided == 1
    records.close()


def test_nothing_to_maintain_in_memory(monkeypatch, capsys):
    monkeypatch.setenv("LEUKOLENS_RECORDS_IN_MEMORY", "true")
    with pytest.raises(SystemExit):
        main(["prune"])
    assert "no database to maintain" in capsys.readouterr().err


def test_a_role_that_may_not_migrate_is_told_so(postgres_roles):
    name = f"leukolens_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(postgres_roles.url("postgres"), autocommit=True) as connection:
        connection.execute(f'CREATE DATABASE "{name}" OWNER leukolens_owner')
    app_url = f"postgresql+psycopg://leukolens_app@127.0.0.1:{postgres_roles.port}/{name}"
    done = run("migrate", LEUKOLENS_DATABASE_URL=app_url)
    assert done.returncode == 1
    assert "run `python -m app.records migrate` as the tables' owner" in done.stderr
