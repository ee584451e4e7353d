"""Listing samples used to read every cell and decision (1-2 s a page at 200,000 cells, 16
pages at once nearly a gigabyte). Each sample's counts are kept in a row of their own, and a
page is one indexed query."""

import contextlib
import random
from collections import Counter, defaultdict

import pytest
import sqlalchemy as sa

from app.core.domain.predictions import Prediction
from app.core.domain.reviews import ReviewRequest
from app.core.identities import ANONYMOUS
from app.records import records_db, sample_summaries
from app.records.review_records import ReviewRecords, UnknownPredictionError
from app.records.withdrawals import DecidedCellError, UploadNotFoundError
from tests.app.records.test_review_records import prediction as scored

DAY = 86_400.0


def prediction(sha: str, request_id: str) -> Prediction:
    return scored(sha, 0.9, "suggests_all", request_id=request_id)


def counted_from_every_row(engine: sa.Engine) -> list[tuple[str, int, int, float]]:
    """The list as it was counted before: every row read, counted in Python."""
    cells_table, decisions_table = records_db.sample_predictions, records_db.review_decisions
    with engine.connect() as connection:
        scored = connection.execute(
            sa.select(
                cells_table.c.sample_id,
                cells_table.c.image_sha256,
                sa.func.max(cells_table.c.time),
            )
            .where(~sample_summaries.withdrawn())
            .group_by(cells_table.c.sample_id, cells_table.c.image_sha256)
        ).all()
        decided = connection.execute(
            sa.select(
                decisions_table.c.sample_id,
                decisions_table.c.image_sha256,
                sa.func.max(decisions_table.c.time),
            ).group_by(decisions_table.c.sample_id, decisions_table.c.image_sha256)
        ).all()
    cells: dict[str, set[str]] = defaultdict(set)
    last: dict[str, float] = defaultdict(float)
    for sample_id, sha, when in scored:
        cells[sample_id].add(sha)
        last[sample_id] = max(last[sample_id], when)
    reviewed: Counter[str] = Counter()
    for sample_id, sha, when in decided:
        if sha in cells.get(sample_id, ()):
            reviewed[sample_id] += 1
            last[sample_id] = max(last[sample_id], when)
    rows = [(s, len(shas), reviewed[s], last[s]) for s, shas in cells.items()]
    return sorted(rows, key=lambda row: (row[3], row[0]), reverse=True)


def listed(records: ReviewRecords, limit: int = 200) -> list[tuple[str, int, int, float]]:
    page, total = records.samples(limit=limit)
    assert total == len(page) or limit < total
    return [(s.sample_id, s.cells, s.reviewed, s.last_change.timestamp()) for s in page]


@pytest.fixture(params=["sqlite", "postgresql"])
def database(request, tmp_path):
    if request.param == "sqlite":
        return records_db.sqlite_url(tmp_path / "records.sqlite3")
    return request.getfixturevalue("postgres_url")


def test_the_summaries_count_as_every_row_would_through_every_kind_of_write(database):
    """Repeats, withdrawals (of uploads there are or not, of decided cells), decisions
    (corrected, on withdrawn cells), in random order on a handful of samples: after each
    write, refused or not, the list equals the count over every row."""
    records = ReviewRecords(database)
    engine = records._engine
    chance = random.Random(36)
    uploads: list[tuple[str, str, list[str]]] = []
    for step in range(120):
        sample_id = f"S-{chance.randrange(6)}"
        action = chance.random()
        if action < 0.5 or not uploads:
            shas = [f"{chance.randrange(12):064x}" for _ in range(chance.randint(1, 3))]
            upload = f"u-{step}"
            records.add_predictions(
                sample_id, [prediction(sha, f"r-{step}") for sha in shas], upload
            )
            uploads.append((sample_id, f"r-{step}", shas))
        elif action < 0.65:
            sample, _, _ = chance.choice(uploads)
            with contextlib.suppress(UploadNotFoundError, DecidedCellError):
                records.withdraw(sample, f"u-{chance.randrange(step + 5)}", ANONYMOUS)
        else:
            sample, request_id, shas = chance.choice(uploads)
            review = ReviewRequest(
                request_id=request_id,
                image_sha256=chance.choice(shas),
                sample_id=sample,
                decision=chance.choice(["ALL", "HEM", "not_assessable"]),
                reviewer="Dr A",
            )
            with contextlib.suppress(UnknownPredictionError):  # a withdrawn cell
                records.add_decision(review)
        assert listed(records) == [
            (s, c, r, pytest.approx(t)) for s, c, r, t in counted_from_every_row(engine)
        ], step
    with engine.begin() as connection:
        before = connection.execute(sa.select(sample_summaries.SUMMARIES)).all()
        sample_summaries.rebuild(connection)
        assert sorted(connection.execute(sa.select(sample_summaries.SUMMARIES)).all()) == sorted(
            before
        )
    records.close()


def test_a_page_is_one_query_on_the_summaries_index(tmp_path):
    """On a seeded database (2,000 samples of 10 cells), each page is one statement that reads
    the summaries in index order: no full pass over the cells, no sort."""
    path = tmp_path / "records.sqlite3"
    records = ReviewRecords(path)
    seed(records._engine, samples=2000, cells_per_sample=10)
    statements: list[str] = []
    sa.event.listen(records._engine, "before_cursor_execute", lambda *a: statements.append(a[2]))
    first, total = records.samples(limit=50)
    middle, _ = records.samples(limit=50, offset=1000)
    assert total == 2000
    assert len(statements) == 2  # one per page
    assert all("sample_predictions" not in s and "review_decisions" not in s for s in statements)
    assert [s.sample_id for s in first][:2] == ["S-01999", "S-01998"]
    assert middle[0].sample_id == "S-00999"
    assert (first[0].cells, first[0].reviewed) == (10, 3)
    with records._engine.connect() as connection:
        plan = " ".join(
            str(row[-1])
            for row in connection.exec_driver_sql(
                "EXPLAIN QUERY PLAN SELECT sample_id FROM sample_summaries "
                "ORDER BY last_change DESC, sample_id DESC LIMIT 50"
            )
        )
    assert "sample_summaries_order" in plan
    assert "TEMP B-TREE" not in plan
    records.close()


def seed(engine: sa.Engine, *, samples: int, cells_per_sample: int, decided: int = 3) -> None:
    """Rows as a busy lab's would be, written straight into the tables, then summarised."""
    now = 1_700_000_000.0
    cells, decisions = [], []
    for number in range(samples):
        sample_id = f"S-{number:05d}"
        for cell in range(cells_per_sample):
            sha = f"{number:032x}{cell:032x}"
            cells.append(
                {
                    "time": now + number,
                    "sample_id": sample_id,
                    "request_id": f"r-{number}",
                    "image_sha256": sha,
                    "model_id": "m",
                    "model_version": "1",
                    "probability_all": 0.9,
                    "label": "ALL",
                    "state": "suggests_all",
                    "assessable": 1,
                    "client_request_id": f"u-{number}",
                }
            )
            if cell < decided:
                decisions.append(
                    {
                        "time": now + number + 0.5,
                        "sample_id": sample_id,
                        "request_id": f"r-{number}",
                        "image_sha256": sha,
                        "decision": "ALL",
                        "reviewer": "Dr A",
                        "comment": "",
                    }
                )
    with engine.begin() as connection:
        connection.execute(records_db.sample_predictions.insert(), cells)
        connection.execute(records_db.review_decisions.insert(), decisions)
        sample_summaries.rebuild(connection)


def test_pruning_rewrites_the_summaries_of_the_samples_it_changed(tmp_path):
    import sqlite3
    import time

    path = tmp_path / "records.sqlite3"
    records = ReviewRecords(path, retention_days=31)
    records.add_predictions("KEPT", [prediction("a" * 64, "r1")])
    old = time.time() - 40 * DAY
    with sqlite3.connect(path) as connection:
        connection.execute(
            "INSERT INTO sample_predictions (time, sample_id, request_id, image_sha256, model_id, "
            "model_version, probability_all, label, state, assessable) "
            "VALUES (?, 'OLD', 'r0', ?, 'm', '1', 0.9, 'ALL', 'suggests_all', 1)",
            (old, "b" * 64),
        )
        connection.execute("INSERT INTO sample_summaries VALUES ('OLD', 1, 0, ?)", (old,))
    assert [s.sample_id for s in records.samples(limit=10)[0]] == ["KEPT", "OLD"]
    assert records.prune() == 1
    assert [s.sample_id for s in records.samples(limit=10)[0]] == ["KEPT"]
    records.close()


def test_the_migration_counts_the_rows_already_there(tmp_path):
    """A database of the earlier schema gets its summaries from the rows it holds, counted as
    each write counts them."""
    from tests.app.records.test_records_db import move_to

    engine = records_db.create_engine(records_db.sqlite_url(tmp_path / "records.sqlite3"))
    move_to(engine, "0007")
    with engine.begin() as connection:
        for number, (sample_id, upload) in enumerate(
            [("A", "u1"), ("A", "u2"), ("B", "u3"), ("A", "u1")]
        ):
            connection.execute(
                records_db.sample_predictions.insert(),
                {
                    "time": 100.0 + number,
                    "sample_id": sample_id,
                    "request_id": f"r{number}",
                    "image_sha256": f"{number % 3:064x}",
                    "model_id": "m",
                    "model_version": "1",
                    "probability_all": 0.9,
                    "label": "ALL",
                    "state": "suggests_all",
                    "assessable": 1,
                    "client_request_id": upload,
                },
            )
        connection.execute(
            records_db.sample_withdrawals.insert(),
            {"time": 104.0, "sample_id": "A", "client_request_id": "u2"},
        )
        connection.execute(
            records_db.review_decisions.insert(),
            {
                "time": 110.0,
                "sample_id": "B",
                "request_id": "r2",
                "image_sha256": f"{2:064x}",
                "decision": "HEM",
                "reviewer": "Dr A",
                "comment": "",
            },
        )
    records_db.migrate(engine)
    with engine.begin() as connection:
        migrated = sorted(connection.execute(sa.select(sample_summaries.SUMMARIES)).all())
        sample_summaries.rebuild(connection)
        rebuilt = sorted(connection.execute(sa.select(sample_summaries.SUMMARIES)).all())
    engine.dispose()
    assert migrated == rebuilt
    assert [tuple(row) for row in migrated] == [("A", 1, 0, 103.0), ("B", 1, 1, 110.0)]
