"""A plain prediction beside a crowd of heavy ones: what each kind of work leaves the others.

    python -m bench.fair_shares [--source DIR] [--label after] [--clients 32] [--seconds 20]

Starts `python -m app` from DIR (default: this checkout) on loopback with the bundled models
and 2 worker threads, and measures the median latency of a plain PNG prediction (one every
0.2 s) alone, then beside CLIENTS clients looping 1.2 MB progressive JPEGs, then beside half
as many looping `explain=true&tta=true` requests. The heavy clients run in a process of their
own, so that their threads do not slow the probe's clock. Compare medians within one run: the
machine is shared.
"""

from __future__ import annotations

import argparse
import io
import multiprocessing
import statistics
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import httpx
import numpy as np
from PIL import Image

from bench.common import machine, write_result
from bench.hostile_uploads import GOOD_CELL, ROOT, Server

PROBE_EVERY_SECONDS = 0.2
WARM_UP_SECONDS = 2.0


def progressive_jpeg(side: int = 1024, quality: int = 97) -> bytes:
    """Noise at the pixel limit, progressive (10 scans): about 1.2 MB, decoded in a child
    process, with a full preprocessing after it."""
    noise = np.random.default_rng(0).integers(0, 256, (side, side, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(noise).save(buffer, "JPEG", progressive=True, quality=quality)
    return buffer.getvalue()


def _loop_heavy(base: str, kind: str, seconds: float, results: list[tuple[int, float]]) -> None:
    """One heavy client: the same request again and again for `seconds`."""
    if kind == "jpeg":
        path, data, name = "/api/v1/predict", progressive_jpeg(), "p.jpg"
    else:
        path, data, name = "/api/v1/predict?explain=true&tta=true", GOOD_CELL.read_bytes(), "c.png"
    deadline = time.monotonic() + seconds
    with httpx.Client(timeout=120) as client:
        while time.monotonic() < deadline:
            started = time.perf_counter()
            try:
                status = client.post(f"{base}{path}", files={"file": (name, data)}).status_code
            except httpx.HTTPError:
                status = 0
            results.append((status, time.perf_counter() - started))


def _heavy_crowd(
    base: str, kind: str, clients: int, seconds: float, queue: multiprocessing.Queue
) -> None:
    """The crowd, in a process of its own: every answer's status and seconds, sent at the end."""
    import threading

    results: list[tuple[int, float]] = []
    threads = [
        threading.Thread(target=_loop_heavy, args=(base, kind, seconds, results))
        for _ in range(clients)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    queue.put(results)


def plain_latencies(base: str, seconds: float, keep_going: Callable[[], bool]) -> list[float]:
    """A plain PNG prediction every PROBE_EVERY_SECONDS for `seconds`: each one's seconds."""
    cell = GOOD_CELL.read_bytes()
    latencies = []
    deadline = time.monotonic() + seconds
    with httpx.Client(timeout=120) as client:
        while time.monotonic() < deadline and keep_going():
            started = time.perf_counter()
            answer = client.post(f"{base}/api/v1/predict", files={"file": ("c.png", cell)})
            if answer.status_code == 200:
                latencies.append(time.perf_counter() - started)
            time.sleep(PROBE_EVERY_SECONDS)
    return latencies


def plain_beside(base: str, kind: str, clients: int, seconds: float) -> dict[str, object]:
    """Plain PNG latencies while `clients` heavy clients of `kind` ("jpeg" or "explain") loop;
    their answers and latencies too."""
    context = multiprocessing.get_context("spawn")
    results = context.Queue()
    crowd = context.Process(
        target=_heavy_crowd, args=(base, kind, clients, seconds + WARM_UP_SECONDS, results)
    )
    crowd.start()
    time.sleep(WARM_UP_SECONDS)
    plain = plain_latencies(base, seconds, crowd.is_alive)
    heavy: list[tuple[int, float]] = results.get(timeout=600)  # before join: the pipe drains
    crowd.join()
    return summary(plain, heavy)


def summary(plain: list[float], heavy: list[tuple[int, float]]) -> dict[str, object]:
    answered = [seconds for status, seconds in heavy if status == 200]
    return {
        "plain_median_s": round(statistics.median(plain), 3) if plain else None,
        "plain_p90_s": round(sorted(plain)[int(0.9 * (len(plain) - 1))], 3) if plain else None,
        "plain_n": len(plain),
        "heavy_median_s": round(statistics.median(answered), 3) if answered else None,
        "heavy_statuses": dict(Counter(status for status, _ in heavy)),
    }


def run(source: Path, clients: int, seconds: float) -> list[dict[str, object]]:
    server = Server(source, {"LEUKOLENS_WORKER_THREADS": "2"})
    try:
        idle = plain_latencies(server.base, min(seconds, 10.0), lambda: True)
        rows: list[dict[str, object]] = [{"case": "plain PNG, idle", **summary(idle, [])}]
        for kind, count, label in [
            ("jpeg", clients, f"{clients} clients looping 1.2 MB progressive JPEGs"),
            ("explain", max(1, clients // 2), f"{max(1, clients // 2)} looping explain+tta"),
        ]:
            row = {
                "case": f"plain PNG beside {label}",
                **plain_beside(server.base, kind, count, seconds),
            }
            print(row, flush=True)
            rows.append(row)
    finally:
        server.stop()
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--source", type=Path, default=ROOT, help="checkout whose app/ to serve")
    parser.add_argument("--label", default="after", help="result name: fair_shares-LABEL")
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--seconds", type=float, default=20.0)
    args = parser.parse_args()
    rows = run(args.source.resolve(), args.clients, args.seconds)
    path = write_result(
        f"fair_shares-{args.label}",
        {"source": str(args.source), "machine": machine(), "rows": rows},
    )
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
