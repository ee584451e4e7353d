"""Resident memory of one server on the bundled models, before and after a bounded loopback load:
what deploy/kubernetes/deployment.yaml's memory request and limit are sized from.

    python -m bench.server_memory [--requests 400] [--batches 40] [--concurrency 16]

Loads every bundled model, sends single-image predictions and 8-image batches (the largest
uploads a replica holds at once), and reads VmRSS and VmHWM (the peak) from /proc.
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
from pathlib import Path

import httpx

from bench.common import write_result
from bench.http_server import DEFAULT_IMAGE, start_server

BATCH_FILES = 8


def memory_mib(pid: int) -> dict[str, float]:
    """VmRSS (now) and VmHWM (the peak so far) of a process, in MiB."""
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        name, _, value = line.partition(":")
        if name in ("VmRSS", "VmHWM"):
            fields[name] = round(int(value.split()[0]) / 1024, 1)
    return fields


async def load(base: str, image: bytes, requests: int, batches: int, concurrency: int) -> int:
    jobs = [("single", number) for number in range(requests)]
    jobs += [("batch", number) for number in range(batches)]
    answered = 0
    async with httpx.AsyncClient(base_url=base, timeout=120) as client:

        async def worker() -> None:
            nonlocal answered
            while jobs:
                kind, number = jobs.pop()
                if kind == "single":
                    response = await client.post(
                        "/api/v1/predict", files={"file": (f"{number}.png", image, "image/png")}
                    )
                else:
                    files = [
                        ("files", (f"{number}-{index}.png", image, "image/png"))
                        for index in range(BATCH_FILES)
                    ]
                    response = await client.post("/api/v1/predict/batch", files=files)
                if response.status_code == 503:  # shed under load: try it again later
                    jobs.insert(0, (kind, number))
                    await asyncio.sleep(float(response.headers.get("retry-after", "1")))
                    continue
                response.raise_for_status()
                answered += 1

        await asyncio.wait_for(asyncio.gather(*(worker() for _ in range(concurrency))), 600)
    return answered


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--image", type=Path, default=DEFAULT_IMAGE)
    parser.add_argument("--requests", type=int, default=400)
    parser.add_argument("--batches", type=int, default=40)
    parser.add_argument("--concurrency", type=int, default=16)
    arguments = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        process, base, _ = start_server(
            {"LEUKOLENS_AUDIT_LOG_PATH": str(Path(folder) / "audit.sqlite3")}
        )
        try:
            ready = memory_mib(process.pid)
            answered = asyncio.run(
                load(
                    base,
                    arguments.image.read_bytes(),
                    arguments.requests,
                    arguments.batches,
                    arguments.concurrency,
                )
            )
            loaded = memory_mib(process.pid)
        finally:
            process.terminate()
            process.wait(timeout=30)
    result = {
        "command": "python -m bench.server_memory "
        f"--requests {arguments.requests} --batches {arguments.batches} "
        f"--concurrency {arguments.concurrency}",
        "requests_answered": answered,
        "rss_mib_when_ready": ready["VmRSS"],
        "rss_mib_after_load": loaded["VmRSS"],
        "peak_rss_mib": loaded["VmHWM"],
    }
    print(result)
    write_result("server_memory", result)


if __name__ == "__main__":
    main()
