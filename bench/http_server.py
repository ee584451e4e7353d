"""The server end to end over loopback HTTP against the engine alone, in one run.

    python -m bench.http_server [--image FILE] [--requests 200]

Measures: cold start to ready; p50/p95 latency of one image, HTTP against the in-process engine
(the server's overhead); throughput at 1, 4, 16 and 64 concurrent clients, with and without
micro-batching, against the engine's offline batch-16 throughput; resident memory under load.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

from app.core.model_registry import ModelRegistry
from app.inference.prediction_path import PredictOptions, Upload, predict_uploads, tta_for
from app.inference.upload_checks import UploadLimits
from app.settings import Settings
from bench.common import summary_ms, time_calls, write_result

DEFAULT_IMAGE = (
    Path(__file__).parents[1] / "tests/fixtures/cnmc/training_data/fold_1/all/UID_16_11_1_all.png"
)
CONCURRENCY_LEVELS = (1, 4, 16, 64)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def start_server(environment: dict[str, str]) -> tuple[subprocess.Popen[bytes], str, float]:
    port = free_port()
    started = time.perf_counter()
    process = subprocess.Popen(
        [sys.executable, "-m", "app", "--port", str(port), "--log-level", "warning"],
        env={**os.environ, **environment},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    while True:
        try:
            if httpx.get(f"{base}/readyz", timeout=1).status_code == 200:
                return process, base, time.perf_counter() - started
        except httpx.TransportError:
            if process.poll() is not None:
                raise RuntimeError("server exited") from None
        time.sleep(0.02)


def resident_memory_mb(pid: int) -> dict[str, float]:
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in {"VmRSS", "VmHWM"}:
            fields[key] = round(int(value.split()[0]) / 1024, 1)
    return {"rss_mb": fields["VmRSS"], "peak_rss_mb": fields["VmHWM"]}


async def throughput(base: str, payload: bytes, clients: int, total: int) -> dict[str, float]:
    remaining = list(range(total))
    statuses: list[int] = []
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(base_url=base, timeout=120, limits=limits) as client:

        async def worker() -> None:
            while remaining:
                remaining.pop()
                response = await client.post(
                    "/api/v1/predict", files={"file": ("cell.png", payload, "image/png")}
                )
                statuses.append(response.status_code)

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(clients)))
        seconds = time.perf_counter() - started
    return {
        "clients": clients,
        "requests": total,
        "non_200": sum(status != 200 for status in statuses),
        "requests_per_second": round(total / seconds, 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--image", type=Path, default=DEFAULT_IMAGE)
    parser.add_argument("--requests", type=int, default=200)
    args = parser.parse_args()
    payload = args.image.read_bytes()
    settings = Settings()
    results: dict[str, object] = {"image": args.image.name, "requests_per_level": args.requests}

    registry = ModelRegistry.load(
        settings.model_store, settings.default_model, intra_op_threads=settings.intra_op_threads
    )
    registry.warm_up()
    limits = UploadLimits(settings.max_upload_bytes, settings.max_image_pixels)
    classifier = registry.get()
    options = PredictOptions(tta=tta_for(classifier, None))
    upload = Upload("cell.png", payload, "image/png")
    results["model"] = registry.default_id
    results["engine_single_image"] = summary_ms(
        time_calls(lambda: predict_uploads([upload], classifier, limits, options), args.requests)
    )
    batch = [upload] * 16
    batch_seconds = time_calls(
        lambda: predict_uploads(batch, classifier, limits, options), max(5, args.requests // 16)
    )
    results["engine_batch16_images_per_second"] = round(
        16 / summary_ms(batch_seconds)["p50_ms"] * 1000, 2
    )

    with tempfile.TemporaryDirectory() as folder:
        audit = {"LEUKOLENS_AUDIT_LOG_PATH": str(Path(folder) / "audit.sqlite3")}
        for label, extra in (
            ("micro_batching", {}),
            ("no_batching", {"LEUKOLENS_BATCH_MAX_SIZE": "1"}),
        ):
            process, base, cold_start = start_server(audit | extra)
            try:
                entry: dict[str, object] = {"cold_start_seconds": round(cold_start, 3)}
                if label == "micro_batching":
                    with httpx.Client(base_url=base, timeout=60) as client:

                        def one_request(c: httpx.Client = client) -> None:
                            c.post(
                                "/api/v1/predict",
                                files={"file": ("cell.png", payload, "image/png")},
                            )

                        entry["http_single_image"] = summary_ms(
                            time_calls(one_request, args.requests)
                        )
                entry["throughput"] = [
                    asyncio.run(
                        throughput(
                            base, payload, clients, args.requests * (2 if clients > 1 else 1)
                        )
                    )
                    for clients in CONCURRENCY_LEVELS
                ]
                entry["memory_after_load"] = resident_memory_mb(process.pid)
                results[label] = entry
            finally:
                process.terminate()
                process.wait(timeout=20)

    http_p50 = results["micro_batching"]["http_single_image"]["p50_ms"]  # type: ignore[index]
    engine_p50 = results["engine_single_image"]["p50_ms"]  # type: ignore[index]
    results["server_overhead_at_p50"] = round(http_p50 / engine_p50 - 1, 3)
    at16 = next(t for t in results["micro_batching"]["throughput"] if t["clients"] == 16)  # type: ignore[index]
    results["throughput16_vs_offline_batch16"] = round(
        at16["requests_per_second"] / results["engine_batch16_images_per_second"],
        3,  # type: ignore[operator]
    )
    path = write_result("http_server", results)
    print(path.read_text())


if __name__ == "__main__":
    main()
