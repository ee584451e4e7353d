"""Hostile clients, second and third rounds: what each case costs a real server, and what it
answers and records.

    python -m bench.hostile_clients [--source DIR] [--label after] [--skip-load]

Starts `python -m app` from DIR (default: this checkout) on loopback with its default settings
and the bundled models, as bench.hostile_uploads does, and runs one case at a time: codec bombs
whose cost is in their structure (a progressive JPEG of repeated scans, a TIFF tile larger than
its image), memory after bursts, slow bodies, a locked database with kill -9, and made-up HTTP
methods against /metrics; then a 2,000-request mixed load with hostile files interleaved.
Per case: the answers, seconds, CPU seconds of the server and its child processes, peak
resident memory of them over idle (VmHWM, reset before each case), and resident memory after.
A full disk is not staged here (it needs a small mount):
tests/app/records/test_prediction_journal.py covers it. Linux only; compare rows within one run.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import os
import signal
import socket
import sqlite3
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import httpx

from bench.hostile_round3 import run_round3
from bench.hostile_uploads import (
    GOOD_CELL,
    ROOT,
    Server,
    jpeg_scan_bomb,
    run_from_command_line,
    tiff_with_tile,
)

CELLS = sorted((ROOT / "tests/fixtures/cnmc/training_data/fold_1").glob("*/*.png"))
TICKS = os.sysconf("SC_CLK_TCK")


def process_tree(pid: int) -> list[int]:
    """The server and every process below it (the decoders)."""
    parents: dict[int, int] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, ValueError, IndexError):
            fields = stat.read_text().rsplit(")", 1)[1].split()
            parents[int(stat.parent.name)] = int(fields[1])
    tree, frontier = [pid], [pid]
    while frontier:
        children = [child for child, parent in parents.items() if parent in frontier]
        tree += children
        frontier = children
    return tree


def cpu_seconds(pid: int) -> float:
    """User + system time of the tree, with children already reaped (replaced decoders)."""
    total = 0.0
    for member in process_tree(pid):
        with contextlib.suppress(OSError):
            fields = Path(f"/proc/{member}/stat").read_text().rsplit(")", 1)[1].split()
            total += sum(int(value) for value in fields[11 : 15 if member == pid else 13])
    return total / TICKS


def memory_mb(pid: int, field: str) -> float:
    total = 0
    for member in process_tree(pid):
        with contextlib.suppress(OSError, StopIteration):
            lines = Path(f"/proc/{member}/status").read_text().splitlines()
            total += int(next(line for line in lines if line.startswith(field + ":")).split()[1])
    return total / 1024


def reset_peaks(pid: int) -> None:
    for member in process_tree(pid):
        with contextlib.suppress(OSError):
            Path(f"/proc/{member}/clear_refs").write_text("5")


def measure(server: Server, name: str, send: Callable[[], object]) -> dict[str, object]:
    time.sleep(0.5)
    pid = server.process.pid
    idle = memory_mb(pid, "VmRSS")
    reset_peaks(pid)
    cpu, started = cpu_seconds(pid), time.perf_counter()
    try:
        outcome = send()
    except (httpx.HTTPError, OSError) as error:
        outcome = f"{type(error).__name__}: {error}"[:160]
    seconds = time.perf_counter() - started
    time.sleep(0.5)
    row = {
        "case": name,
        "outcome": outcome,
        "seconds": round(seconds, 2),
        "cpu_seconds": round(cpu_seconds(pid) - cpu, 2),
        "peak_mb_over_idle": round(memory_mb(pid, "VmHWM") - idle, 1),
        "rss_mb_after": round(memory_mb(pid, "VmRSS"), 1),
        "healthy_after": server.healthy(),
    }
    print(row, flush=True)
    return row


def post_files(
    base: str, files: list[tuple[str, bytes]], query: str = "", timeout: float = 600.0
) -> int:
    path = "/api/v1/predict/batch" if len(files) > 1 else "/api/v1/predict"
    field = "files" if len(files) > 1 else "file"
    answer = httpx.post(
        f"{base}{path}{query}",
        files=[(field, (name, data)) for name, data in files],
        timeout=timeout,
    )
    return answer.status_code


def gone_after(base: str, data: bytes, seconds: float) -> None:
    with contextlib.suppress(httpx.TimeoutException):
        httpx.post(f"{base}/api/v1/predict", files={"file": ("x.jpg", data)}, timeout=seconds)


def two_gone_bombs_then_normal(base: str) -> str:
    bomb = jpeg_scan_bomb(1024, 1_600_000)  # 19.2 MB
    leaving = [threading.Thread(target=gone_after, args=(base, bomb, 5.0)) for _ in range(2)]
    for thread in leaving:
        thread.start()
    time.sleep(1.0)
    started = time.perf_counter()
    status = post_files(base, [("cell.png", GOOD_CELL.read_bytes())])
    waited = time.perf_counter() - started
    for thread in leaving:
        thread.join()
    return f"normal request: {status} after {waited:.2f} s"


def two_tiles_at_once(base: str) -> str:
    tile = tiff_with_tile(1024, 16368)
    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        statuses = list(pool.map(lambda _: post_files(base, [("t.tif", tile)]), range(2)))
    return str(statuses)


def trickle(port: int, path: str, stop: threading.Event) -> None:
    """An upload declaring 1 MB and sending one byte a second until told to stop."""
    with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port)) as sock:
        sock.sendall(
            f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: multipart/form-data; "
            "boundary=b\r\nContent-Length: 1000000\r\n\r\n".encode()
        )
        while not stop.is_set():
            sock.sendall(b"-")
            if stop.wait(1.0):
                break


def with_tricklers(port: int, path: str, count: int, probe: Callable[[], list[int]]) -> str:
    stop = threading.Event()
    threads = [threading.Thread(target=trickle, args=(port, path, stop)) for _ in range(count)]
    for thread in threads:
        thread.start()
    time.sleep(2.0)
    try:
        statuses = probe()
    finally:
        stop.set()
        for thread in threads:
            thread.join()
    return str(dict(Counter(statuses)))


def normal_predictions(base: str, count: int, every: float) -> list[int]:
    statuses = []
    for _ in range(count):
        try:
            statuses.append(post_files(base, [("c.png", GOOD_CELL.read_bytes())], timeout=120))
        except httpx.HTTPError:
            statuses.append(0)
        time.sleep(every)
    return statuses


def health_checks(base: str, seconds: float) -> list[int]:
    statuses, deadline = [], time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            statuses.append(httpx.get(f"{base}/healthz", timeout=5).status_code)
        except httpx.HTTPError:
            statuses.append(0)
        time.sleep(0.5)
    return statuses


def audit_rows(database: Path) -> set[str]:
    with contextlib.closing(sqlite3.connect(database)) as reader:
        return {row[0] for row in reader.execute("SELECT request_id FROM predictions")}


def locked_database_sample(server: Server, database: Path) -> str:
    holder = sqlite3.connect(database, isolation_level=None, check_same_thread=False)
    holder.execute("BEGIN EXCLUSIVE")
    threading.Timer(12.0, lambda: (holder.execute("COMMIT"), holder.close())).start()
    started = time.perf_counter()
    answer = httpx.post(
        f"{server.base}/api/v1/predict?sample_id=LAB-1",
        files={"file": ("c.png", GOOD_CELL.read_bytes())},
        timeout=120,
    )
    return f"{answer.status_code} after {time.perf_counter() - started:.1f} s"


def kill_9_while_locked(source: Path, audit_dir: Path) -> dict[str, object]:
    database = audit_dir / "kill9.sqlite3"
    environment = {"LEUKOLENS_AUDIT_LOG_PATH": str(database)}
    server = Server(source, environment)
    holder = sqlite3.connect(database, isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")
    answered = []
    for _ in range(20):
        answer = httpx.post(
            f"{server.base}/api/v1/predict",
            files={"file": ("c.png", GOOD_CELL.read_bytes())},
            timeout=120,
        )
        if answer.status_code == 200:
            answered.append(answer.json()["request_id"])
    os.kill(server.process.pid, signal.SIGKILL)
    server.process.wait()
    holder.execute("COMMIT")
    holder.close()
    restarted = Server(source, environment)
    time.sleep(1.0)
    written = audit_rows(database)
    restarted.stop()
    row = {
        "case": "20 predictions while another process holds the database, then kill -9",
        "outcome": f"{len(answered)} answered; {len(set(answered) & written)} of them in the "
        "database after a restart",
    }
    print(row, flush=True)
    return row


def made_up_methods(source: Path) -> dict[str, object]:
    server = Server(source, {"LEUKOLENS_HTTP_IMPLEMENTATION": "h11"})
    try:
        before = len(httpx.get(f"{server.base}/metrics").text.splitlines())
        for index in range(2000):
            with contextlib.suppress(httpx.HTTPError):
                httpx.request(f"X{index}", f"{server.base}/api/v1/predict", timeout=10)
        after = len(httpx.get(f"{server.base}/metrics").text.splitlines())
    finally:
        server.stop()
    row = {
        "case": "2,000 requests with made-up methods (h11), /metrics lines",
        "outcome": f"{before} -> {after}",
    }
    print(row, flush=True)
    return row


def mixed_load(server: Server, database: Path, total: int = 2000) -> dict[str, object]:
    """16 clients; every 25th request is hostile (a scan bomb, an oversized tile, a batch of
    explained cells, a garbage batch); the rest are normal single predictions."""
    hostile = [
        lambda: post_files(server.base, [("b.jpg", jpeg_scan_bomb(1024, 200_000))]),
        lambda: post_files(server.base, [("t.tif", tiff_with_tile(1024, 16368))]),
        lambda: post_files(server.base, [(c.name, c.read_bytes()) for c in CELLS], "?explain=true"),
        lambda: post_files(server.base, [("x.png", b"\0" * 1_000_000)] * 8),
    ]
    cell = GOOD_CELL.read_bytes()
    normal: Counter[int] = Counter()
    answered: list[str] = []
    peak = 0.0
    lock = threading.Lock()

    def one(index: int) -> None:
        nonlocal peak
        if index % 25 == 24:
            with contextlib.suppress(httpx.HTTPError):
                hostile[(index // 25) % len(hostile)]()
        else:
            try:
                answer = httpx.post(
                    f"{server.base}/api/v1/predict",
                    files={"file": ("c.png", cell)},
                    timeout=120,
                )
                status = answer.status_code
            except httpx.HTTPError:
                status = 0
            with lock:
                normal[status] += 1
                if status == 200:
                    answered.append(answer.json()["request_id"])
        if index % 50 == 0:
            resident = memory_mb(server.process.pid, "VmRSS")
            with lock:
                peak = max(peak, resident)

    started = time.perf_counter()
    with concurrent.futures.ThreadPoolExecutor(16) as pool:
        list(pool.map(one, range(total)))
    seconds = time.perf_counter() - started
    time.sleep(2.0)
    written = audit_rows(database)
    row = {
        "case": f"mixed load: {total} requests, 16 clients, 1 in 25 hostile",
        "outcome": f"normal answers {dict(normal)}; {len(set(answered) & written)} of "
        f"{len(answered)} answered in the database",
        "seconds": round(seconds, 1),
        "peak_rss_mb_sampled": round(peak, 1),
    }
    print(row, flush=True)
    return row


def run(source: Path, skip_load: bool) -> list[dict[str, object]]:
    rows: list[dict[str, object]] = []
    server = Server(source, {})
    database = Path(server.audit_dir.name) / "audit.sqlite3"
    try:
        rows.append({"case": "idle", "rss_mb": round(memory_mb(server.process.pid, "VmRSS"), 1)})
        base = server.base
        cases: list[tuple[str, Callable[[], object]]] = [
            (
                "progressive JPEG, one 12-byte scan x 200,000 (2.4 MB)",
                lambda: post_files(base, [("b.jpg", jpeg_scan_bomb(1024, 200_000))]),
            ),
            (
                "two 19.2 MB scan bombs, clients leave after 5 s",
                lambda: two_gone_bombs_then_normal(base),
            ),
            (
                "batch of 64 x 242 KB scan bombs",
                lambda: post_files(base, [("b.jpg", jpeg_scan_bomb(1024, 20_000))] * 64),
            ),
            (
                "TIFF, 1024x1024 image in one 16368-px tile",
                lambda: post_files(base, [("t.tif", tiff_with_tile(1024, 16368))]),
            ),
            ("two such TIFFs at once", lambda: two_tiles_at_once(base)),
            (
                "batch of 64 real cells with explain=true",
                lambda: post_files(
                    base, [(c.name, c.read_bytes()) for c in (CELLS * 4)[:64]], "?explain=true"
                ),
            ),
            (
                "batch of 64 x 20 MB non-images (1.3 GB body)",
                lambda: post_files(base, [("x.png", b"\1" * 20_000_000)] * 64),
            ),
            (
                "64 uploads trickling 1 B/s; 15 normal predictions, one a second",
                lambda: with_tricklers(
                    server.port, "/api/v1/predict", 64, lambda: normal_predictions(base, 15, 1.0)
                ),
            ),
            (
                "300 trickling bodies to /api/v1/reviews; /healthz for 10 s",
                lambda: with_tricklers(
                    server.port, "/api/v1/reviews", 300, lambda: health_checks(base, 10.0)
                ),
            ),
            (
                "database locked 12 s; a ?sample_id prediction",
                lambda: locked_database_sample(server, database),
            ),
        ]
        for name, send in cases:
            rows.append(measure(server, name, send))
        if not skip_load:
            rows.append(mixed_load(server, database))
    finally:
        server.stop()
    with tempfile.TemporaryDirectory() as scratch:
        rows.append(kill_9_while_locked(source, Path(scratch)))
    rows.append(made_up_methods(source))
    return rows + run_round3(source, skip_load)  # the third round's (bench/hostile_round3.py)


def main() -> None:
    run_from_command_line(
        __doc__ or "", "hostile_clients", run, "--skip-load", "no 2,000-request mixed load"
    )


if __name__ == "__main__":
    main()
