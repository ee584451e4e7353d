"""What adaptation reads: the latest decision per cell, picked by the database and streamed."""

import inspect

from app.records import records_db
from app.records.decisions_read import latest_decisions_in


def test_the_database_picks_the_latest_decision_of_each_cell_and_rows_are_streamed(tmp_path):
    path = tmp_path / "records.sqlite3"
    engine = records_db.create_engine(records_db.sqlite_url(path))
    records_db.migrate(engine)
    rows = [
        {
            "time": float(round_),
            "sample_id": f"S-{cell % 7}",
            "request_id": "r",
            "image_sha256": f"{cell:064x}",
            "decision": ("HEM", "not_assessable", "ALL")[round_],
            "reviewer": "Dr A",
            "comment": "",
        }
        for round_ in range(3)
        for cell in range(2_500)
    ]
    with engine.begin() as connection:
        connection.execute(records_db.review_decisions.insert(), rows)
    engine.dispose()
    latest = latest_decisions_in(path)
    assert inspect.isgenerator(latest)  # rows come as they are read, not as one list
    decisions = list(latest)
    assert len(decisions) == 2_500  # one per cell, never the superseded ones
    assert {decision.decision for decision in decisions} == {"ALL"}
    assert decisions[0].image_sha256 == f"{0:064x}"
