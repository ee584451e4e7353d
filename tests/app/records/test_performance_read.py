"""The counting in SQL: each cell once, by its latest decision, against the served call; what
is left out is counted beside. On SQLite and on PostgreSQL."""

import time

from app.core.domain.predictions import ModelRef, Prediction, Timings
from app.core.domain.reviews import ReviewRequest
from app.core.identities import ANONYMOUS
from app.core.local_performance import CountRow
from app.records.performance_read import Selection, count_rows, counted_cells
from app.records.review_records import ReviewRecords


def sha(n: int) -> str:
    return f"{n:064x}"


def answer(n, probability, *, model="m", version="1", assessable=True, request_id="r1"):
    state = (
        "not_assessable"
        if not assessable
        else "indeterminate"
        if abs(probability - 0.5) < 0.05
        else ("suggests_all" if probability >= 0.5 else "suggests_normal")
    )
    return Prediction(
        label=("ALL" if probability >= 0.5 else "HEM") if assessable else None,
        probability_all=probability,
        threshold=0.5,
        model=ModelRef(id=model, version=version),
        warnings=[],
        timings_ms=Timings(decode=0, preprocess=0, inference=0, total=0),
        request_id=request_id,
        image_sha256=sha(n),
        state=state,
        assessable=assessable,
    )


def decide(records, sample, n, decision, reviewer="Dr A", request_id="r1"):
    records.add_decision(
        ReviewRequest(
            request_id=request_id,
            image_sha256=sha(n),
            sample_id=sample,
            decision=decision,
            reviewer=reviewer,
        )
    )


def seed_known(records: ReviewRecords) -> None:
    """Sample S-1 (model m v1): cells 1-8 and the special cases; S-2: two more cells; model
    m2 scores S-3."""
    records.add_predictions(
        "S-1",
        [
            answer(1, 0.9),  # tp
            answer(2, 0.8),  # decision changed twice: HEM, ALL, HEM -> fp
            answer(3, 0.1),  # tn
            answer(4, 0.2),  # fn
            answer(5, 0.52),  # indeterminate, called ALL, decided HEM -> fp
            answer(6, 0.3),  # decided not assessable
            answer(7, 0.9, assessable=False),  # a not-assessable answer, decided ALL anyway
            answer(8, 0.7),  # never decided
        ],
    )
    records.add_predictions("S-1", [answer(1, 0.9, request_id="r2")])  # a repeat of cell 1
    # A cancelled upload: its cell leaves the sample (before any decision: a decided cell
    # cannot be withdrawn).
    records.add_predictions("S-1", [answer(9, 0.9, request_id="r3")], client_request_id="c3")
    records.withdraw("S-1", "c3", ANONYMOUS)
    for n, decision in [(1, "ALL"), (2, "HEM"), (2, "ALL"), (2, "HEM"), (3, "HEM"), (4, "ALL")]:
        decide(records, "S-1", n, decision)
    decide(records, "S-1", 5, "HEM", reviewer="Dr B")
    decide(records, "S-1", 6, "not_assessable")
    decide(records, "S-1", 7, "ALL")
    records.add_predictions("S-2", [answer(10, 0.9), answer(11, 0.9)])
    decide(records, "S-2", 10, "ALL", reviewer="Dr C")
    decide(records, "S-2", 11, "HEM", reviewer="Dr C")
    records.add_predictions("S-3", [answer(12, 0.9, model="m2")])  # another model
    decide(records, "S-3", 12, "HEM")
    records.add_predictions("S-4", [answer(13, 0.1, version="0")])  # an older version
    decide(records, "S-4", 13, "HEM")


def totals(rows: list[CountRow]) -> dict[str, int]:
    fields = [
        f for f in CountRow.__dataclass_fields__ if f not in ("sample_id", "period", "reviewers")
    ]
    return {f: sum(getattr(r, f) for r in rows) for f in fields if sum(getattr(r, f) for r in rows)}


def test_each_cell_counts_once_by_its_latest_decision(records):
    seed_known(records)
    with records.engine.connect() as connection:
        rows = count_rows(connection, Selection("m", "1"))
    assert totals(rows) == {
        "tp": 2,  # cells 1 and 10
        "fp": 3,  # 2 (latest of three decisions), 5 (indeterminate) and 11
        "tn": 1,
        "fn": 1,
        "confirmed": 3,  # 1, 3, 10
        "overruled": 3,  # 2, 4, 11
        "indeterminate_hem": 1,  # 5
        "unreviewed": 1,  # 8
        "decided_not_assessable": 1,  # 6
        "not_assessable_answers": 1,  # 7
        "repeats": 1,
        "withdrawn": 1,  # 9
        "other_versions": 1,  # 13, scored by m v0
    }
    by_sample = {row.sample_id: row for row in rows}
    assert by_sample["S-1"].reviewers == {"Dr A", "Dr B"}
    assert by_sample["S-2"].reviewers == {"Dr C"}
    assert (by_sample["S-2"].tp, by_sample["S-2"].fp) == (1, 1)
    with records.engine.connect() as connection:
        other = count_rows(connection, Selection("m2", "1"))
    assert totals(other) == {"fp": 1, "overruled": 1}


def test_the_cells_adapt_reads_are_the_counted_ones(records):
    seed_known(records)
    with records.engine.connect() as connection:
        cells = counted_cells(connection, Selection("m", "1"))
    assert sorted((c.sample_id, c.image_sha256, c.label, c.decision) for c in cells) == sorted(
        [
            ("S-1", sha(1), "ALL", "ALL"),
            ("S-1", sha(2), "ALL", "HEM"),
            ("S-1", sha(3), "HEM", "HEM"),
            ("S-1", sha(4), "HEM", "ALL"),
            ("S-1", sha(5), "ALL", "HEM"),
            ("S-2", sha(10), "ALL", "ALL"),
            ("S-2", sha(11), "ALL", "HEM"),
        ]
    )


def test_a_repeat_whose_first_scoring_was_withdrawn_becomes_the_cell(records):
    records.add_predictions("S-1", [answer(1, 0.9, request_id="r1")], client_request_id="c1")
    records.add_predictions("S-1", [answer(1, 0.2, request_id="r2")], client_request_id="c2")
    records.add_predictions("S-1", [answer(1, 0.9, request_id="r3")], client_request_id="c3")
    records.withdraw("S-1", "c1", ANONYMOUS)
    decide(records, "S-1", 1, "HEM", request_id="r2")
    with records.engine.connect() as connection:
        rows = count_rows(connection, Selection("m", "1"))
    # As the sample shows it: the first live scoring (r2, called normal) is the cell.
    assert [p.request_id for p in records.sample("S-1").predictions] == ["r2"]
    assert totals(rows) == {"tn": 1, "confirmed": 1, "repeats": 1}


def test_time_windows_and_periods(records, tmp_path):
    seed_known(records)
    now = time.time()
    with records.engine.connect() as connection:
        none = count_rows(connection, Selection("m", "1", since=now + 60))
        everything = count_rows(connection, Selection("m", "1", until=now + 60, period="week"))
    assert none == []
    assert sum(r.tp for r in everything) == 2
    assert len({r.period for r in everything}) == 1
    assert everything[0].period == time.strftime(
        "%Y-%m-%d", time.gmtime(now - 86400 * time.gmtime(now).tm_wday)
    )
