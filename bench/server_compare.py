"""The server over loopback HTTP, today's code against an earlier commit's, in one run.

    python -m bench.server_compare --baseline 5b557d6
    python -m bench.server_compare --baseline 5b557d6 --variant "LEUKOLENS_WORKER_THREADS=4"

For each configuration, alternating `--repeats` times: a server (`python -m app`, the earlier
commit from a temporary git worktree) on a free loopback port; one client's requests, with the
server's own `timings_ms` (preprocess against inference); throughput at 16 concurrent clients,
with the CPU spent per request by the server's event loop, its other threads and the load client
(all on the same cores); then the 2,000-request load at 32 clients and the peak resident
memory after it. Every answer's status is counted. Each number is the median over the repeats;
ratios are to the baseline.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from contextlib import ExitStack
from pathlib import Path

import httpx

from bench.common import proc_cpu_seconds, write_result
from bench.http_server import DEFAULT_IMAGE, free_port, resident_memory_mb
from bench.same_run import checkout, describe, tree_environment

ROOT = Path(__file__).parents[1]


def start(tree: Path, environment: dict[str, str]) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    command = [sys.executable, "-m", "app", "--host", "127.0.0.1", "--port", str(port)]
    process = subprocess.Popen(
        [*command, "--log-level", "warning"],
        cwd=tree,
        env=tree_environment(tree, environment),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{base}/readyz", timeout=1).status_code == 200:
                return process, base
        except httpx.TransportError:
            if process.poll() is not None:
                raise RuntimeError("server exited") from None
        time.sleep(0.05)
    process.kill()
    raise RuntimeError("server not ready in 60 s")


async def load(base: str, payload: bytes, total: int, clients: int) -> dict[str, object]:
    """`total` requests from `clients` concurrent clients; bounded by a 10-minute timeout."""
    remaining = list(range(total))
    statuses: Counter[int] = Counter()
    timings: list[dict[str, float]] = []
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(base_url=base, timeout=120, limits=limits) as client:

        async def worker() -> None:
            while remaining:
                remaining.pop()
                response = await client.post(
                    "/api/v1/predict", files={"file": ("cell.png", payload, "image/png")}
                )
                statuses[response.status_code] += 1
                if response.status_code == 200:
                    timings.append(response.json()["timings_ms"])

        started = time.perf_counter()
        await asyncio.wait_for(asyncio.gather(*(worker() for _ in range(clients))), 600)
        seconds = time.perf_counter() - started
    return {
        "requests_per_second": round(total / seconds, 2),
        "statuses": dict(statuses),
        "timings": timings,
    }


def hide_modules(folder: Path, modules: list[str], tree: Path) -> dict[str, str]:
    """The path on which `import MODULE` fails for the tree's server, as if it were not
    installed: a package of that name whose import raises, put before site-packages."""
    if not modules:
        return {}
    for module in dict.fromkeys(modules):
        package = folder / module
        package.mkdir(parents=True)
        (package / "__init__.py").write_text(f"raise ImportError('{module} hidden by the bench')\n")
    return {"PYTHONPATH": os.pathsep.join([str(tree), str(folder)])}


def server_cpu_seconds(pid: int) -> dict[str, float]:
    """The server process's CPU seconds in all (threads that ended included) and its main
    thread's (the event loop)."""
    return {
        "process": proc_cpu_seconds(Path(f"/proc/{pid}/stat")),
        "main_thread": proc_cpu_seconds(Path(f"/proc/{pid}/task/{pid}/stat")),
    }


def cpu_ms_per_request(
    before: dict[str, float], after: dict[str, float], client: float, requests: int
) -> dict[str, float]:
    """Where the CPU went per request: the event loop (the server's main thread: HTTP,
    middleware, multipart, JSON), its other threads (decoding, the recipe, the checks,
    onnxruntime, the audit writer) and this load-generating client on the same cores."""
    loop = after["main_thread"] - before["main_thread"]
    others = after["process"] - before["process"] - loop
    return {
        "server_event_loop": round(loop / requests * 1e3, 2),
        "server_other_threads": round(others / requests * 1e3, 2),
        "load_client": round(client / requests * 1e3, 2),
    }


def measure(
    tree: Path, environment: dict[str, str], payload: bytes, args: argparse.Namespace
) -> dict[str, object]:
    process, base = start(tree, environment)
    try:
        asyncio.run(load(base, payload, 20, 1))
        single = asyncio.run(load(base, payload, args.single, 1))
        timings = single.pop("timings")
        single["timings_ms_median"] = {
            key: round(statistics.median(t[key] for t in timings), 3)  # type: ignore[union-attr]
            for key in ("decode", "preprocess", "inference", "total")
        }
        before = server_cpu_seconds(process.pid)
        client_started = time.process_time()
        at16 = asyncio.run(load(base, payload, args.requests16, 16))
        at16["cpu_ms_per_request"] = cpu_ms_per_request(
            before,
            server_cpu_seconds(process.pid),
            time.process_time() - client_started,
            args.requests16,
        )
        at16.pop("timings")
        heavy = asyncio.run(load(base, payload, 2000, 32))
        heavy.pop("timings")
        heavy["memory_after"] = resident_memory_mb(process.pid)
    finally:
        process.terminate()
        process.wait(timeout=30)
    return {"one_client": single, "clients_16": at16, "load_2000_at_32": heavy}


def summarise(runs: list[dict]) -> dict[str, object]:
    def median(path: tuple[str, ...]) -> float:
        values = []
        for run in runs:
            value = run
            for key in path:
                value = value[key]
            values.append(value)
        return round(statistics.median(values), 3)

    statuses: Counter[str] = Counter()
    for run in runs:
        for part in ("one_client", "clients_16", "load_2000_at_32"):
            statuses.update({str(k): v for k, v in run[part]["statuses"].items()})
    return {
        "one_client_requests_per_second": median(("one_client", "requests_per_second")),
        "clients_16_cpu_ms_per_request": {
            key: median(("clients_16", "cpu_ms_per_request", key))
            for key in ("server_event_loop", "server_other_threads", "load_client")
        },
        "one_client_timings_ms": {
            key: median(("one_client", "timings_ms_median", key))
            for key in ("decode", "preprocess", "inference", "total")
        },
        "preprocess_over_inference": round(
            median(("one_client", "timings_ms_median", "preprocess"))
            / median(("one_client", "timings_ms_median", "inference")),
            2,
        ),
        "clients_16_requests_per_second": median(("clients_16", "requests_per_second")),
        "load_2000_requests_per_second": median(("load_2000_at_32", "requests_per_second")),
        "peak_rss_mb_after_2000": median(("load_2000_at_32", "memory_after", "peak_rss_mb")),
        "statuses": dict(statuses),
        "runs": runs,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--baseline", help="an earlier commit to measure in the same run")
    parser.add_argument("--image", type=Path, default=DEFAULT_IMAGE)
    parser.add_argument("--single", type=int, default=100, help="requests from one client")
    parser.add_argument("--requests16", type=int, default=400, help="requests at 16 clients")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument(
        "--variant", action="append", default=[], help="'NAME=VALUE ...' settings for today's"
    )
    parser.add_argument(
        "--every", default="", help="'NAME=VALUE ...' settings for every tree, the baseline too"
    )
    parser.add_argument(
        "--baseline-without",
        action="append",
        default=[],
        metavar="MODULE",
        help="a module the baseline runs without (hidden from its imports), e.g. one this "
        "venv has but the baseline's own install did not: uvloop, httptools",
    )
    parser.add_argument("--name", default="server_compare")
    args = parser.parse_args()
    payload = args.image.read_bytes()
    with ExitStack() as stack:
        folder = Path(stack.enter_context(tempfile.TemporaryDirectory()))
        # e.g. LEUKOLENS_DEFAULT_MODEL: trees may differ in their store's default.
        every = dict(item.split("=", 1) for item in args.every.split())

        def own_audit(name: str) -> dict[str, str]:
            """Each configuration its own audit database: trees may differ in its schema (a
            database migrated by a newer tree stops an older one at start-up)."""
            path = folder / f"audit {name.replace('/', '_')}.sqlite3"
            return {"LEUKOLENS_AUDIT_LOG_PATH": str(path), **every}

        configurations: dict[str, tuple[Path, dict[str, str]]] = {
            "current": (ROOT, own_audit("current"))
        }
        for variant in args.variant:
            settings = dict(item.split("=", 1) for item in variant.split())
            name = f"current {variant}"
            configurations[name] = (ROOT, own_audit(name) | settings)
        if args.baseline:
            baseline = stack.enter_context(checkout(args.baseline))
            hidden = hide_modules(folder / "hidden", args.baseline_without, baseline)
            configurations["baseline"] = (baseline, own_audit("baseline") | hidden)
        runs: dict[str, list[dict]] = {name: [] for name in configurations}
        for repeat in range(args.repeats):
            names = list(configurations)
            for name in names if repeat % 2 == 0 else reversed(names):
                print(f"repeat {repeat + 1}: {name}", file=sys.stderr)
                tree, environment = configurations[name]
                runs[name].append(measure(tree, environment, payload, args))
        trees = {name: describe(tree) for name, (tree, _) in configurations.items()}
    results: dict[str, object] = {
        "image": args.image.name,
        "every": args.every,
        "baseline_without": args.baseline_without,
        "trees": trees,
    }
    summaries = {name: summarise(values) for name, values in runs.items()}
    results["configurations"] = summaries
    if "baseline" in summaries:
        old = summaries["baseline"]
        results["ratios_to_baseline"] = {
            name: {
                "clients_16_requests_per_second": round(
                    summary["clients_16_requests_per_second"]  # type: ignore[operator]
                    / old["clients_16_requests_per_second"],  # type: ignore[operator]
                    2,
                ),
                "one_client_requests_per_second": round(
                    summary["one_client_requests_per_second"]  # type: ignore[operator]
                    / old["one_client_requests_per_second"],  # type: ignore[operator]
                    2,
                ),
            }
            for name, summary in summaries.items()
            if name != "baseline"
        }
    print(write_result(args.name, results).read_text())


if __name__ == "__main__":
    main()
