"""The kept outcome counts agree with the records they are derived from, after every kind of
write, after the migration that fills them, and after a rebuild; the figures from them are the
figures from the records, whatever the window; on SQLite and PostgreSQL."""

import contextlib
import random
import time

import pytest
import sqlalchemy as sa

from app.core.domain.predictions import ModelRef, Prediction, Timings
from app.core.domain.reviews import ReviewRequest
from app.core.identities import ANONYMOUS
from app.records import records_db, scoring_outcomes
from app.records.performance_read import Selection, count_rows
from app.records.review_records import ReviewRecords
from app.records.withdrawals import DecidedCellError

DAY = 86_400.0


def answer(n: int, request_id: str, *, version: str = "1", assessable: bool = True) -> Prediction:
    probability = 0.9 if n % 3 else 0.2
    return Prediction(
        label=("ALL" if probability >= 0.5 else "HEM") if assessable else None,
        probability_all=probability,
        threshold=0.5,
        model=ModelRef(id="m", version=version),
        warnings=[],
        timings_ms=Timings(decode=0, preprocess=0, inference=0, total=0),
        request_id=request_id,
        image_sha256=f"{n:064x}",
        state=("suggests_all" if probability >= 0.5 else "suggests_normal")
        if assessable
        else "not_assessable",
        assessable=assessable,
    )


def kept_rows(engine: sa.Engine) -> list[tuple]:
    table = scoring_outcomes.COUNTS
    with engine.connect() as connection:
        return sorted(tuple(row) for row in connection.execute(sa.select(table)))


def worked_out_rows(engine: sa.Engine) -> list[tuple]:
    with engine.connect() as connection:
        counted = scoring_outcomes.counted(connection.dialect.name)
        return sorted(tuple(row) for row in connection.execute(counted))


def by_sample(rows) -> dict:
    return {(row.sample_id, row.period): row for row in rows}


@pytest.fixture(params=["sqlite", "postgresql"])
def records(request, tmp_path):
    if request.param == "sqlite":
        store = ReviewRecords(tmp_path / "audit.sqlite3", retention_days=31)
    else:
        store = ReviewRecords(request.getfixturevalue("postgres_url"), retention_days=31)
    yield store
    store.close()


def test_after_any_mix_of_writes_the_kept_outcomes_are_the_records_own(records):
    """Scorings, repeats, decisions changed, withdrawals (of repeats' first scorings too),
    another version, not-assessable answers: the table is what the records say, and the
    figures from it are the figures from the rows."""
    rng = random.Random(7)
    uploads: list[tuple[str, str]] = []
    for step in range(160):
        sample = f"S-{rng.randrange(4)}"
        action = rng.random()
        if action < 0.55 or not uploads:
            request_id, upload = f"r{step}", f"u{step}"
            scored = [
                answer(
                    rng.randrange(12),
                    request_id,
                    version=rng.choice(["1", "1", "1", "0"]),
                    assessable=rng.random() > 0.1,
                )
                for _ in range(rng.randrange(1, 4))
            ]
            records.add_predictions(sample, scored, upload, ANONYMOUS)
            uploads.append((sample, upload))
        elif action < 0.85:
            report = records.sample(sample)
            if report is None or not report.predictions:
                continue
            cell = rng.choice(report.predictions)
            records.add_decision(
                ReviewRequest(
                    request_id=cell.request_id,
                    image_sha256=cell.image_sha256,
                    sample_id=sample,
                    decision=rng.choice(["ALL", "HEM", "not_assessable"]),
                    reviewer=rng.choice(["Dr A", "Dr B"]),
                )
            )
        else:
            sample, upload = rng.choice(uploads)
            with contextlib.suppress(LookupError, DecidedCellError):  # gone, or decided
                records.withdraw(sample, upload, ANONYMOUS)
    engine = records.engine
    assert kept_rows(engine) == worked_out_rows(engine)
    fates = {row[6] for row in kept_rows(engine)}
    assert {"", "r", "x"} <= fates  # the mix reached the rules that matter
    now = time.time()
    today = now // DAY * DAY
    windows = [
        (None, None),
        (today, None),  # a day's first second: the counts alone
        (None, now + 1),  # ends within a day: that day's part from the records
        (now - 3600, now + 3600),  # within days on either side
        (today - DAY, today + 0.5 * DAY),
        (now + DAY, None),  # nothing in it
    ]
    for period in ("week", "month"):
        for version in ("1", "0"):
            for since, until in windows:
                selection = Selection("m", version, since=since, until=until, period=period)
                with engine.connect() as connection:
                    kept = count_rows(connection, selection)
                    from_rows = count_rows(connection, selection, kept=False)
                assert by_sample(kept) == by_sample(from_rows), (period, version, since, until)


def test_pruning_rewrites_the_outcomes_of_the_samples_it_changed(tmp_path):
    import sqlite3

    path = tmp_path / "records.sqlite3"
    records = ReviewRecords(path, retention_days=31)
    records.add_predictions("KEPT", [answer(1, "r1")])
    with sqlite3.connect(path) as connection:
        connection.execute(
            "INSERT INTO sample_predictions (time, sample_id, request_id, image_sha256, model_id, "
            "model_version, probability_all, label, state, assessable) "
            "VALUES (?, 'OLD', 'r0', ?, 'm', '1', 0.9, 'ALL', 'suggests_all', 1)",
            (time.time() - 40 * DAY, "b" * 64),
        )
    with records.engine.begin() as connection:
        scoring_outcomes.rebuild(connection)
    assert [row[0] for row in kept_rows(records.engine)] == ["KEPT", "OLD"]
    assert records.prune() == 1
    assert kept_rows(records.engine) == worked_out_rows(records.engine)
    assert [row[0] for row in kept_rows(records.engine)] == ["KEPT"]
    records.close()


def test_the_migration_works_out_the_rows_already_there(tmp_path):
    """A database of the earlier schema: its outcomes from the rows it holds, by the rules the
    server applies to each write (a repeat whose first scoring was withdrawn counts as the
    cell; a cell whose every scoring was withdrawn counts once, as withdrawn)."""
    from tests.app.records.test_records_db import move_to

    engine = records_db.create_engine(records_db.sqlite_url(tmp_path / "records.sqlite3"))
    move_to(engine, "0008")
    scorings = [  # sample, request, upload, image, repeat_of
        ("A", "r0", "u1", 0, None),
        ("A", "r1", "u2", 1, None),
        ("A", "r2", "u3", 1, "r1"),  # a repeat of a withdrawn scoring: the cell's now
        ("A", "r3", "u1", 0, "r0"),  # a repeat of a live one
        ("A", "r4", "u2", 2, None),  # withdrawn, no live scoring: the withdrawn cell
        ("A", "r5", "u2", 2, "r4"),  # withdrawn too: left out
        ("B", "r6", "u4", 0, None),
    ]
    with engine.begin() as connection:
        for number, (sample, request, upload, image, repeat_of) in enumerate(scorings):
            connection.execute(
                records_db.sample_predictions.insert(),
                {
                    "time": 100.0 + number,
                    "sample_id": sample,
                    "request_id": request,
                    "image_sha256": f"{image:064x}",
                    "model_id": "m",
                    "model_version": "1",
                    "probability_all": 0.9,
                    "label": "ALL" if image else "HEM",
                    "state": "suggests_all",
                    "assessable": 1,
                    "client_request_id": upload,
                    "repeat_of": repeat_of,
                },
            )
        connection.execute(
            records_db.sample_withdrawals.insert(),
            {"time": 110.0, "sample_id": "A", "client_request_id": "u2"},
        )
        for number, (sample, image, decision, reviewer) in enumerate(
            [("A", 0, "ALL", "Dr A"), ("A", 0, "HEM", "Dr B"), ("B", 0, "not_assessable", "C")]
        ):
            connection.execute(
                records_db.review_decisions.insert(),
                {
                    "time": 120.0 + number,
                    "sample_id": sample,
                    "request_id": "r0",
                    "image_sha256": f"{image:064x}",
                    "decision": decision,
                    "reviewer": reviewer,
                    "comment": "",
                },
            )
    records_db.migrate(engine)
    kept = kept_rows(engine)
    assert kept == worked_out_rows(engine)
    assert sorted((row[0], row[6], row[7], row[8]) for row in kept) == [
        ("A", "", "TDr B", 1),  # the latest decision counts: HEM on a HEM call (r0)
        ("A", "", "u", 1),  # r2: a repeat of a withdrawn scoring counts as the cell
        ("A", "r", "TDr B", 1),  # r3: a repeat of a live one
        ("A", "w", "u", 1),  # r4: withdrawn, no live scoring: the withdrawn cell
        ("A", "x", "u", 2),  # r1 (its cell lives on in r2) and r5: left out
        ("B", "", "dC", 1),
    ]
    assert {row[3] for row in kept} == {0.0}  # the first UTC day: times of 100 s
    with engine.begin() as connection:  # tampered with, then rebuilt from the records
        connection.execute(scoring_outcomes.COUNTS.delete())
        scoring_outcomes.rebuild(connection)
    assert kept_rows(engine) == kept
    engine.dispose()
