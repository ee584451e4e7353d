"""GET /api/v1/performance on 200,000 cells: the endpoint's time, counted in SQL.

Seeds a synthetic lab (2,000 samples of 100 cells over 90 days, 80% reviewed, with repeats,
withdrawals and changed decisions) into a fresh SQLite file (and, with --postgres URL, a
PostgreSQL database), with the kept scoring outcomes the server writes beside them
(app/records/scoring_outcomes.py), then times the endpoint in process through the ASGI app:
as served (a GROUP BY over the kept outcomes) and, in the same run, with the outcomes worked
out from the records at each request (the query before they were kept), checking that both
answer the same. Beside them a plain `SELECT count(*) ... GROUP BY sample_id` over the
scorings: the machine is shared, so the ratios are what carry over.

    python -m bench.local_performance [--postgres postgresql+psycopg://...]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from functools import partial
from pathlib import Path

import sqlalchemy as sa
from fastapi.testclient import TestClient

from app.core.model_registry import record_model
from app.main import create_app
from app.records import performance_read, records_db
from app.settings import Settings
from bench.common import RESULTS_DIR, machine, summary_ms, time_calls
from bench.seeded_records import SeededLab, migrated_engine, seed
from tests.conftest import write_channel_mean_model


def measure(url: str, store: Path, folder: Path, repeats: int) -> dict[str, object]:
    engine = migrated_engine(url)
    started = time.time()
    written = seed(
        engine,
        SeededLab(
            samples=2000,
            cells_per_sample=100,
            start=started - 90 * 86400,
            days=90,
            model_id="redness",
        ),
    )
    with engine.connect() as connection:
        connection.execute(sa.text("ANALYZE"))
    scan = sa.select(records_db.sample_predictions.c.sample_id, sa.func.count()).group_by(
        records_db.sample_predictions.c.sample_id
    )

    def plain_scan() -> None:
        with engine.connect() as connection:
            connection.execute(scan).all()

    settings = Settings(
        model_store=store,
        worker_threads=1,
        audit_log_path=folder / "unused.sqlite3",
        database_url=None if url.startswith("sqlite") else url,
        performance_refresh_seconds=3600,
    )
    if url.startswith("sqlite"):
        settings = settings.model_copy(
            update={"audit_log_path": Path(url.removeprefix("sqlite:///"))}
        )
    result: dict[str, object] = {"rows_written": written}
    kept_count = performance_read.count_rows
    with TestClient(create_app(settings)) as client:
        body = client.get("/api/v1/performance").json()
        result["cells_in_confusion"] = body["cells"]
        result["samples"] = body["samples"]
        for source, count in (
            ("", kept_count),
            ("_from_the_records", partial(kept_count, kept=False)),
        ):
            performance_read.count_rows = count
            try:
                for period in ("month", "week"):
                    url = f"/api/v1/performance?period={period}"
                    answered = client.get(url).json()
                    if source:  # the same figures whichever way they were counted
                        performance_read.count_rows = kept_count
                        assert answered == client.get(url).json(), period
                        performance_read.count_rows = count
                    result[f"endpoint_{period}{source}"] = summary_ms(
                        time_calls(
                            lambda u=url: client.get(u).raise_for_status(), repeats, warmup=1
                        )
                    )
            finally:
                performance_read.count_rows = kept_count
    result["plain_group_by_scan"] = summary_ms(time_calls(plain_scan, repeats, warmup=1))
    engine.dispose()
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--postgres", help="a PostgreSQL URL to measure on too (emptied)")
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as name:
        folder = Path(name)
        store = folder / "store"
        record_model(store, write_channel_mean_model(store / "redness", (8.0, 0, 0)), default=True)
        results = {
            "machine": machine(),
            "sqlite": measure(f"sqlite:///{folder}/r.sqlite3", store, folder, args.repeats),
        }
        if args.postgres:
            results["postgresql"] = measure(args.postgres, store, folder, args.repeats)
    path = RESULTS_DIR / "local_performance.json"
    path.write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
