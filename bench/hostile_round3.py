"""Hostile clients, third round: the cases `python -m bench.hostile_clients` adds.

Uploads just over the per-file limit with TMPDIR on a 64 MiB tmpfs (the manifest's emptyDir;
mounted here, so root only), a year of records (bench.records_paging), bad journal lines, sample
ids with birth dates in other spellings, 503 answers and the audit rows they leave (a locked
database; a full disk and a restart, on a small tmpfs), and a plain prediction beside heavy
clients (bench.fair_shares). Each case starts its own `python -m app` from the checkout under
test, so that the same code measures the code before and after.

    python -m bench.hostile_round3 [--source DIR] [--label after] [--skip-load]
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import json
import os
import socket
import sqlite3
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx

from bench.fair_shares import run as fair_shares
from bench.hostile_uploads import GOOD_CELL, Server

MIB = 1024 * 1024


@contextlib.contextmanager
def small_tmpfs(megabytes: int) -> Iterator[Path]:
    """A tmpfs of that size, mounted for the case (root only)."""
    mount = Path(tempfile.mkdtemp(prefix="leukolens-tmpfs-"))
    subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={megabytes}m", "tmpfs", str(mount)],
        check=True,
        capture_output=True,
    )
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)
        mount.rmdir()


def tmpfs_used(path: Path) -> int:
    stats = os.statvfs(path)
    return (stats.f_blocks - stats.f_bfree) * stats.f_frsize


class UsageWatch:
    """The most bytes a file system held while it was watched (every millisecond)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch)

    def _watch(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, tmpfs_used(self.path))
            time.sleep(0.001)

    def __enter__(self) -> UsageWatch:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()


def form_head(name: str = "file", filename: str = "x.png") -> bytes:
    return (
        f'--b\r\nContent-Disposition: form-data; name="{name}"; filename="{filename}"\r\n'
        "Content-Type: image/png\r\n\r\n"
    ).encode()


def raw_post(port: int, path: str, head: bytes, part_bytes: int, *, finish: bool) -> bytes:
    """A multipart upload of one part of `part_bytes` (chunked: no length declared), the
    answer read while sending (a reset must not lose it); without `finish` the body stays
    open after the part. The answer's first bytes (b"" if none came within 10 s)."""
    block = b"\0" * MIB
    pieces = [head] + [block] * (part_bytes // MIB) + [block[: part_bytes % MIB]]
    if finish:
        pieces.append(b"\r\n--b--\r\n")
    chunks = [f"{len(piece):x}\r\n".encode() + piece + b"\r\n" for piece in pieces if piece]
    if finish:
        chunks.append(b"0\r\n\r\n")
    answer = b""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(
            f"POST {path} HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
            "Content-Type: multipart/form-data; boundary=b\r\n\r\n".encode()
        )
        sock.setblocking(False)
        for chunk in chunks:
            view = memoryview(chunk)
            while view and not answer:
                with contextlib.suppress(BlockingIOError):
                    answer += sock.recv(65536)
                try:
                    view = view[sock.send(view) :]
                except BlockingIOError:
                    time.sleep(0.001)
                except OSError:
                    break
        deadline = time.monotonic() + 10
        while b"\r\n\r\n" not in answer and time.monotonic() < deadline:
            try:
                more = sock.recv(65536)
            except BlockingIOError:
                time.sleep(0.01)
                continue
            except OSError:
                break
            if not more:
                break
            answer += more
    return answer


def status_of(answer: bytes) -> int:
    return int(answer.split(b" ", 2)[1]) if answer.startswith(b"HTTP/1.1 ") else 0


def spooling(source: Path) -> list[dict[str, object]]:
    """The issue's four uploads; per case the answer and TMPDIR's peak over idle."""
    if os.geteuid() != 0:
        return [{"case": "uploads with TMPDIR on a 64 MiB tmpfs", "outcome": "skipped: not root"}]
    rows: list[dict[str, object]] = []
    with small_tmpfs(64) as tmp:
        server = Server(source, {"TMPDIR": str(tmp), "LEUKOLENS_MAX_BATCH_FILES": "8"})
        try:
            port, idle = server.port, tmpfs_used(tmp)
            cases = [
                (
                    "a 20 MiB + 30 KiB part, body still open",
                    lambda: [
                        raw_post(port, "/api/v1/predict", form_head(), 20 * MIB + 30 * 1024,
                                 finish=False)
                    ],
                ),
                (
                    "a batch of one 79 MB part",
                    lambda: [
                        raw_post(port, "/api/v1/predict/batch", form_head("files"), 79_000_000,
                                 finish=True)
                    ],
                ),
                (
                    "four such batches at once (60 MiB parts)",
                    lambda: list(
                        concurrent.futures.ThreadPoolExecutor(4).map(
                            lambda _: raw_post(port, "/api/v1/predict/batch",
                                               form_head("files"), 60 * MIB, finish=True),
                            range(4),
                        )
                    ),
                ),
                (
                    "200 MB chunked, one part",
                    lambda: [
                        raw_post(port, "/api/v1/predict", form_head(), 200_000_000, finish=True)
                    ],
                ),
            ]  # fmt: skip
            for name, send in cases:
                with UsageWatch(tmp) as watch:
                    answers = send()
                row = {
                    "case": f"TMPDIR on a 64 MiB tmpfs: {name}",
                    "outcome": [status_of(answer) for answer in answers],
                    "tmpdir_peak_mb": round((watch.peak - idle) / MIB, 1),
                    "healthy_after": server.healthy(),
                }
                print(row, flush=True)
                rows.append(row)
        finally:
            server.stop()
    return rows


def journal_lines(source: Path) -> dict[str, object]:
    """Five good rows around each kind of bad line, then a start: how many reach the
    database."""
    bad = {
        '{"a":1}': b'{"a":1}\n',
        "null": b"null\n",
        "[1,2]": b"[1,2]\n",
        "a string probability": None,
        "request_id null": None,
    }
    written = {}
    for name, line in bad.items():
        with tempfile.TemporaryDirectory() as scratch:
            database, journal = Path(scratch) / "audit.sqlite3", Path(scratch) / "audit.journal"
            good = [journal_row(f"good-{n}") for n in range(5)]
            if line is None:
                changed = journal_row("bad")
                if name == "request_id null":
                    changed["request_id"] = None
                else:
                    changed["probability_all"] = "0.7"
                line = json.dumps(changed).encode() + b"\n"
            lines = [json.dumps(row).encode() + b"\n" for row in good]
            journal.write_bytes(b"".join([*lines[:2], line, *lines[2:]]))
            environment = {"LEUKOLENS_AUDIT_LOG_PATH": str(database)}
            Server(source, environment).stop()
            with contextlib.closing(sqlite3.connect(database)) as reader:
                found = {r[0] for r in reader.execute("SELECT request_id FROM predictions")}
            written[name] = f"{len(found & {r['request_id'] for r in good})} of 5"
    row = {"case": "5 good journal rows around one bad line: rows in the database", **written}
    print(row, flush=True)
    return row


def journal_row(request_id: str) -> dict[str, object]:
    return {
        "time": time.time(),
        "request_id": request_id,
        "image_sha256": "ab" * 32,
        "model_id": "efficientnet-lite0-linear-128-cell",
        "model_version": "1",
        "probability_all": 0.7,
        "label": "ALL",
        "latency_ms": 12.5,
        "client_request_id": "",
        "item": 0,
    }


SPELLINGS = [
    "JANEDOE19620314",
    "janedoe-1962-03-14",
    "Jane.Doe.1962-3-14",
    "Jane-Doe-62-03-14",
    "jane.doe.3.14.1962",
    "Jane.Doe.14Mar1962",
]
LAB_NUMBERS = ["20241201-003", "S24-12345", "HEM-LAB-2024-001", "SMITH_JOHN_MRN4471234"]


def sample_ids(server: Server) -> dict[str, object]:
    cell = GOOD_CELL.read_bytes()
    answers = {}
    for sample_id in SPELLINGS + LAB_NUMBERS:
        answer = httpx.post(
            f"{server.base}/api/v1/predict",
            params={"sample_id": sample_id},
            files={"file": ("c.png", cell)},
            timeout=60,
        )
        warned = answer.status_code == 200 and answer.json().get("sample_id_warning")
        answers[sample_id] = f"{answer.status_code}{' with a warning' if warned else ''}"
    row = {"case": "sample ids: a name beside a birth date, and lab numbers", **answers}
    print(row, flush=True)
    return row


def rows_claiming_answers(database: Path) -> dict[str, int]:
    """request id -> rows that claim an answer (every row, where rows carry no outcome)."""
    with contextlib.closing(sqlite3.connect(database)) as reader:
        columns = {c[1] for c in reader.execute("PRAGMA table_info(predictions)")}
        where = " WHERE outcome = 'answered'" if "outcome" in columns else ""
        found: dict[str, int] = {}
        for (request_id,) in reader.execute(f"SELECT request_id FROM predictions{where}"):
            found[request_id] = found.get(request_id, 0) + 1
    return found


def locked_503_rows(source: Path) -> dict[str, object]:
    """Predictions with ?sample_id while another process holds the database (503: nothing was
    recorded), then the lock let go: audit rows that claim an answer, against answers."""
    with tempfile.TemporaryDirectory() as scratch:
        database = Path(scratch) / "audit.sqlite3"
        environment = {
            "LEUKOLENS_AUDIT_LOG_PATH": str(database),
            "LEUKOLENS_AUDIT_BUSY_TIMEOUT_SECONDS": "1",
        }
        server = Server(source, environment)
        statuses: dict[str, int] = {}
        try:
            holder = sqlite3.connect(database, isolation_level=None, check_same_thread=False)
            holder.execute("BEGIN EXCLUSIVE")
            for query in ("?sample_id=LOCK-1", "?sample_id=LOCK-1", "?sample_id=LOCK-2", ""):
                answer = httpx.post(
                    f"{server.base}/api/v1/predict{query}",
                    files={"file": ("c.png", GOOD_CELL.read_bytes())},
                    timeout=120,
                )
                statuses[answer.headers["x-request-id"]] = answer.status_code
            holder.execute("COMMIT")
            holder.close()
            time.sleep(3.0)
        finally:
            server.stop()
        claimed = rows_claiming_answers(database)
    answered = [r for r, status in statuses.items() if status == 200]
    refused = [r for r, status in statuses.items() if status == 503]
    row = {
        "case": "4 predictions while the database is locked (3 with ?sample_id)",
        "outcome": f"{len(answered)} answered, {len(refused)} refused 503; rows claiming an "
        f"answer: {sum(claimed.get(r, 0) for r in answered)} for the answered, "
        f"{sum(claimed.get(r, 0) for r in refused)} for the refused",
    }
    print(row, flush=True)
    return row


def full_disk_503_rows(source: Path) -> dict[str, object]:
    """The journal on a full 1 MiB tmpfs and the database locked by another process: neither
    takes the rows, and after 15 s the predictions get 503 ("nothing was answered"). Then the
    disk has room, the lock goes, and a restart: rows claiming an answer for the refused."""
    if os.geteuid() != 0:
        return {"case": "full disk and a locked database, 503s, restart", "outcome": "skipped"}
    with tempfile.TemporaryDirectory() as scratch, small_tmpfs(1) as disk:
        database = Path(scratch) / "audit.sqlite3"
        environment = {
            "LEUKOLENS_AUDIT_LOG_PATH": str(database),
            "LEUKOLENS_AUDIT_JOURNAL_PATH": str(disk / "audit.journal"),
        }
        server = Server(source, environment)
        filler = disk / "filler"
        with contextlib.suppress(OSError), filler.open("wb") as file:
            while True:
                file.write(b"\0" * 4096)
                file.flush()
        holder = sqlite3.connect(database, isolation_level=None, check_same_thread=False)
        holder.execute("BEGIN EXCLUSIVE")
        try:
            with concurrent.futures.ThreadPoolExecutor(6) as pool:
                answers = list(
                    pool.map(
                        lambda _: httpx.post(
                            f"{server.base}/api/v1/predict",
                            files={"file": ("c.png", GOOD_CELL.read_bytes())},
                            timeout=120,
                        ),
                        range(6),
                    )
                )
        finally:
            filler.unlink()
            holder.execute("COMMIT")
            holder.close()
        time.sleep(3.0)
        server.stop()
        Server(source, environment).stop()  # the restart replays the journal
        claimed = rows_claiming_answers(database)
    refused = [a.headers["x-request-id"] for a in answers if a.status_code == 503]
    answered = [a.headers["x-request-id"] for a in answers if a.status_code == 200]
    row = {
        "case": "6 predictions, journal disk full and database locked, then a restart",
        "outcome": f"{len(answered)} answered, {len(refused)} refused 503; after the restart, "
        f"rows claiming an answer for the refused: {sum(claimed.get(r, 0) for r in refused)}",
    }
    print(row, flush=True)
    return row


def run_round3(source: Path, skip_load: bool) -> list[dict[str, object]]:
    from bench.records_paging import run as records_paging

    rows = spooling(source)
    engines = ["sqlite"] if skip_load else ["sqlite", "postgresql"]
    rows += [{"case": "a year of records", **row} for row in records_paging(source, engines)]
    rows.append(journal_lines(source))
    server = Server(source, {})
    try:
        rows.append(sample_ids(server))
    finally:
        server.stop()
    rows.append(locked_503_rows(source))
    rows.append(full_disk_503_rows(source))
    rows += fair_shares(source, clients=32, seconds=15.0)  # bench/fair_shares.py's cases
    return rows


def main() -> None:
    from bench.hostile_uploads import run_from_command_line

    run_from_command_line(
        __doc__ or "",
        "hostile_round3",
        run_round3,
        "--skip-load",
        "SQLite only for the year of records (no PostgreSQL)",
    )


if __name__ == "__main__":
    main()
