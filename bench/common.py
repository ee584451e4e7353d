"""Helpers shared by the benchmarks: timing, machine description, result files."""

from __future__ import annotations

import json
import os
import platform
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import onnxruntime as ort

from app.core.manifest import MANIFEST_FILENAME
from app.settings import bundled_model_store

RESULTS_DIR = Path(__file__).parent / "results"


def time_calls(function: Callable[[], object], repeats: int, warmup: int = 3) -> list[float]:
    """Seconds per call, after warm-up calls that are not counted."""
    for _ in range(warmup):
        function()
    durations = []
    for _ in range(repeats):
        started = time.perf_counter()
        function()
        durations.append(time.perf_counter() - started)
    return durations


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(fraction * (len(ordered) - 1))))
    return ordered[index]


def summary_ms(durations: list[float]) -> dict[str, float]:
    milliseconds = [d * 1000 for d in durations]
    return {
        "p50_ms": round(statistics.median(milliseconds), 3),
        "p95_ms": round(percentile(milliseconds, 0.95), 3),
        "mean_ms": round(statistics.fmean(milliseconds), 3),
        "n": len(milliseconds),
    }


def machine() -> dict[str, object]:
    model = "unknown"
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    return {
        "cpu": model,
        "logical_cpus": os.cpu_count(),
        "python": platform.python_version(),
        "platform": platform.platform(),
    }


def proc_cpu_seconds(stat: Path) -> float:
    """User + system CPU seconds from a /proc stat file of a process or a thread (Linux)."""
    fields = stat.read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def write_result(name: str, payload: dict[str, object]) -> Path:
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    path = RESULTS_DIR / f"{name}.json"
    path.write_text(json.dumps({"machine": machine(), **payload}, indent=2) + "\n")
    return path


def ort_session(
    path: Path,
    threads: int,
    *,
    level: ort.GraphOptimizationLevel = ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
) -> ort.InferenceSession:
    """A CPU session as the server makes one (all graph optimisations unless `level` says
    otherwise), on `threads` (0: onnxruntime's default)."""
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.graph_optimization_level = level
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def interleaved_p50_ms(
    runners: dict[str, ort.InferenceSession], feed: dict[str, np.ndarray], calls: int
) -> dict[str, float]:
    """p50 per call of each graph, the graphs taking turns call by call."""
    durations: dict[str, list[float]] = {name: [] for name in runners}
    for runner in runners.values():
        for _ in range(3):
            runner.run(None, feed)
    for _ in range(calls):
        for name, runner in runners.items():
            started = time.perf_counter()
            runner.run(None, feed)
            durations[name].append((time.perf_counter() - started) * 1000)
    return {name: round(statistics.median(values), 3) for name, values in durations.items()}


def check_install_target(folder: Path) -> None:
    """`--install` writes only into an explicit folder outside the bundled store that holds
    a model card: benchmarks never change what the project ships."""
    if folder.resolve().is_relative_to(bundled_model_store().resolve()):
        raise SystemExit(
            f"--install {folder}: the bundled model_store/ is not written by benchmarks; copy "
            "the model's folder elsewhere and install there"
        )
    if not (folder / MANIFEST_FILENAME).is_file():
        raise SystemExit(f"--install {folder}: no {MANIFEST_FILENAME} there (copy the model first)")
