"""A busy lab's year of records, and what reading them costs the server.

    python -m bench.records_paging [--source DIR] [--label after] [--engines sqlite,postgresql]

Seeds 200,000 cells in 5,000 samples, 50,000 decisions, 50 withdrawals and 200,000 audit rows
(with DIR's own schema and migrations), on SQLite and on a throwaway PostgreSQL, starts
`python -m app` from DIR on that database and measures:
- one page of the sample list (GET /api/v1/samples?limit=50, at offsets across the list),
  one sample's page (GET /api/v1/samples/{id}) and, where the server has it, the audit's CSV
  export: median seconds;
- 16 pages at once beside one plain prediction, 30 rounds: the prediction's median against
  the same prediction alone (the issue's measure), and the peak resident memory of the server
  and its children over idle (VmHWM, reset first); the same with 16 `/healthz` instead of
  pages, the floor that serving any 16 requests sets on this machine;
- a harsher load for comparison: 16 clients reading pages back to back for 10 s (about a
  thousand pages a second here), with a prediction every 0.2 s beside them.
Compare within one run: the machine is shared.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

import httpx

from bench.common import machine, write_result
from bench.fair_shares import plain_latencies
from bench.hostile_clients import memory_mb, reset_peaks
from bench.hostile_uploads import ROOT, Server

SAMPLES, CELLS_PER_SAMPLE, DECISIONS_PER_SAMPLE = 5_000, 40, 10
CONCURRENT_PAGES = 16
SEED = r"""
import random, sys, time
from app.records import records_db
engine = records_db.create_engine(sys.argv[1])
records_db.migrate(engine)
samples, per_sample, decided = (int(value) for value in sys.argv[2:5])
random.seed(36)
now = time.time()
cells, decisions, withdrawals, audit = [], [], [], []
for number in range(samples):
    sample_id, start = f"S24-{number:05d}", now - random.uniform(1, 300) * 86_400
    for cell in range(per_sample):
        sha, request = f"{number:032x}{cell:032x}", f"r{number}-{cell // 8}"
        common = {"time": start + cell, "request_id": request, "image_sha256": sha,
                  "model_id": "m", "model_version": "1", "probability_all": 0.7, "label": "ALL"}
        cells.append({**common, "sample_id": sample_id, "state": "suggests_all",
                      "assessable": 1, "client_request_id": f"u{number}-{cell // 8}",
                      "threshold": 0.5, "tta": 0, "warnings": ""})
        audit.append({**common, "latency_ms": 20.0, "item": cell % 8})
        if cell < decided:
            decisions.append({"time": start + 3600 + cell, "sample_id": sample_id,
                              "request_id": request, "image_sha256": sha, "decision": "ALL",
                              "reviewer": "Dr A", "comment": ""})
    if number % 100 == 0:
        withdrawals.append({"time": start + 60, "sample_id": sample_id,
                            "client_request_id": f"u{number}-4"})
with engine.begin() as connection:
    for table, rows in ((records_db.sample_predictions, cells),
                        (records_db.review_decisions, decisions),
                        (records_db.sample_withdrawals, withdrawals),
                        (records_db.predictions, audit)):
        for start in range(0, len(rows), 20_000):
            connection.execute(table.insert(), rows[start:start + 20_000])
print(len(cells), len(decisions), len(withdrawals), len(audit))
"""


def seed(source: Path, url: str) -> str:
    """The records, written by DIR's own code (its schema, its migrations)."""
    done = subprocess.run(
        [sys.executable, "-c", SEED, url, str(SAMPLES), str(CELLS_PER_SAMPLE),
         str(DECISIONS_PER_SAMPLE)],
        cwd=source,
        env={"PYTHONPATH": str(source), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        check=True,
        timeout=1800,
    )  # fmt: skip
    return done.stdout.strip()


def median_seconds(
    call: Callable[[], httpx.Response], repeats: int = 15, budget: float = 30.0
) -> float:
    """The median of `repeats` calls, or of as many as `budget` seconds allow (3 at least)."""
    durations: list[float] = []
    deadline = time.monotonic() + budget
    while len(durations) < repeats and (len(durations) < 3 or time.monotonic() < deadline):
        started = time.perf_counter()
        call().raise_for_status()
        durations.append(time.perf_counter() - started)
    return round(statistics.median(durations), 4)


def pages_at_once(base: str, seconds: float) -> dict[str, object]:
    """CONCURRENT_PAGES clients reading pages for `seconds`; their median page."""
    stop = threading.Event()
    durations: list[float] = []

    def read(offset: int) -> None:
        with httpx.Client(timeout=120) as client:
            while not stop.is_set():
                started = time.perf_counter()
                client.get(f"{base}/api/v1/samples", params={"limit": 50, "offset": offset})
                durations.append(time.perf_counter() - started)

    threads = [threading.Thread(target=read, args=(n * 300,)) for n in range(CONCURRENT_PAGES)]
    for thread in threads:
        thread.start()
    time.sleep(seconds)
    stop.set()
    for thread in threads:
        thread.join()
    return {"pages_read": len(durations), "page_median_s": round(statistics.median(durations), 4)}


def rounds_beside(
    base: str, path: str = "/api/v1/samples", rounds: int = 30, budget: float = 120.0
) -> dict[str, object]:
    """Each round: 16 GETs of `path` (pages, at offsets across the list) and one prediction
    sent at the same moment; the prediction's seconds. And the same prediction alone, as many
    times. As many rounds as `budget` seconds allow (3 at least)."""
    from bench.hostile_uploads import GOOD_CELL

    cell = GOOD_CELL.read_bytes()
    clients = [httpx.Client(timeout=120) for _ in range(CONCURRENT_PAGES + 1)]
    start = threading.Barrier(CONCURRENT_PAGES + 1)

    def page(client: httpx.Client, offset: int) -> None:
        start.wait()
        client.get(f"{base}{path}", params={"limit": 50, "offset": offset})

    def predict(client: httpx.Client) -> float:
        started = time.perf_counter()
        client.post(f"{base}/api/v1/predict", files={"file": ("c.png", cell)}).raise_for_status()
        return time.perf_counter() - started

    alone: list[float] = []
    beside: list[float] = []
    deadline = time.monotonic() + budget
    try:
        while len(beside) < rounds and (len(beside) < 3 or time.monotonic() < deadline):
            alone.append(predict(clients[-1]))
            time.sleep(0.1)
            threads = [
                threading.Thread(target=page, args=(client, 300 * n))
                for n, client in enumerate(clients[:-1])
            ]
            for thread in threads:
                thread.start()
            start.wait()
            beside.append(predict(clients[-1]))
            for thread in threads:
                thread.join()
            start.reset()
            time.sleep(0.1)
    finally:
        for client in clients:
            client.close()
    idle, loaded = statistics.median(alone), statistics.median(beside)
    return {
        "rounds": len(beside),
        "prediction_alone_median_s": round(idle, 4),
        "prediction_beside_16_pages_median_s": round(loaded, 4),
        "prediction_ratio": round(loaded / idle, 2),
    }


def measure(source: Path, engine: str, url: str, environment: dict[str, str]) -> dict[str, object]:
    seeded = seed(source, url)
    server = Server(source, {"LEUKOLENS_WORKER_THREADS": "2", **environment})
    try:
        base, pid = server.base, server.process.pid
        with httpx.Client(timeout=120) as client:
            row: dict[str, object] = {"engine": engine, "seeded": seeded}
            row["first_page_s"] = median_seconds(
                lambda: client.get(f"{base}/api/v1/samples", params={"limit": 50})
            )
            row["page_at_offset_4000_s"] = median_seconds(
                lambda: client.get(f"{base}/api/v1/samples", params={"limit": 50, "offset": 4000})
            )
            row["one_samples_page_s"] = median_seconds(
                lambda: client.get(f"{base}/api/v1/samples/S24-02500")
            )
            if client.get(f"{base}/api/v1/audit.csv", params={"until": "1970-01-02"}).is_success:
                reset_peaks(pid)
                idle = memory_mb(pid, "VmRSS")
                started = time.perf_counter()
                with client.stream("GET", f"{base}/api/v1/audit.csv") as export:
                    lines = sum(chunk.count("\n") for chunk in export.iter_text())
                row["audit_export_s"] = round(time.perf_counter() - started, 2)
                row["audit_export_lines"] = lines
                row["audit_export_peak_mb_over_idle"] = round(memory_mb(pid, "VmHWM") - idle, 1)
        time.sleep(1.0)
        reset_peaks(pid)
        idle = memory_mb(pid, "VmRSS")
        row.update(rounds_beside(base))
        row["16_pages_peak_mb_over_idle"] = round(memory_mb(pid, "VmHWM") - idle, 1)
        # The floor: 16 of the cheapest requests there are, beside the same prediction.
        floor = rounds_beside(base, "/healthz")
        row["healthz_floor"] = {k: floor[k] for k in ("rounds", "prediction_ratio")}
        idle_predictions = plain_latencies(base, 6.0, lambda: True)
        reset_peaks(pid)
        idle = memory_mb(pid, "VmRSS")
        beside: list[float] = []
        probe = threading.Thread(
            target=lambda: beside.extend(plain_latencies(base, 8.0, lambda: True))
        )
        probe.start()
        loop = pages_at_once(base, 10.0)
        probe.join()
        row["back_to_back"] = {
            **loop,
            "peak_mb_over_idle": round(memory_mb(pid, "VmHWM") - idle, 1),
            "prediction_idle_median_s": round(statistics.median(idle_predictions), 4),
            "prediction_beside_median_s": round(statistics.median(beside), 4),
        }
    finally:
        server.stop()
    print(row, flush=True)
    return row


def run(source: Path, engines: list[str]) -> list[dict[str, object]]:
    rows = []
    with tempfile.TemporaryDirectory() as scratch:
        if "sqlite" in engines:
            database = Path(scratch) / "records.sqlite3"
            rows.append(
                measure(
                    source,
                    "sqlite",
                    f"sqlite:///{database}",
                    {"LEUKOLENS_AUDIT_LOG_PATH": str(database)},
                )
            )
        if "postgresql" in engines:
            from tests.app.conftest import PostgresServer

            postgres = PostgresServer()
            postgres.start()
            try:
                time.sleep(1.0)
                url = postgres.new_database()
                rows.append(measure(source, "postgresql", url, {"LEUKOLENS_DATABASE_URL": url}))
            finally:
                postgres.remove()
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--source", type=Path, default=ROOT, help="checkout whose app/ to serve")
    parser.add_argument("--label", default="after", help="result name: records_paging-LABEL")
    parser.add_argument("--engines", default="sqlite,postgresql")
    args = parser.parse_args()
    rows = run(args.source.resolve(), args.engines.split(","))
    path = write_result(
        f"records_paging-{args.label}",
        {"source": str(args.source), "machine": machine(), "rows": rows},
    )
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
