"""Where the batch command line's CPU goes: each thread's CPU time over one whole run.

    python -m bench.cli_cpu --data ../shared/data/C-NMC_Leukemia [--model ID] [--int8]

Runs `app.cli.predict.main` inside this process, as `python -m app.cli.predict` would, while a
sampler reads every thread's CPU time from /proc every 0.2 s; what each thread had spent before
the run (imports, pools started at import) is subtracted. Threads are grouped by role: the main
thread (onnxruntime, the answers and the CSV), the preparing pool (reading, decoding, the
recipe and the checks) and threads that Python did not start (OpenCV's and onnxruntime's own
pools). A thread's CPU after its last sample is not seen by /proc once it has ended; the
process's own total (which keeps it) minus the roles is reported as `unattributed`. The total
against the wall-clock time says how busy the two cores were, so a reader can tell a slow stage
from an idle core. Linux only (/proc).
"""

from __future__ import annotations

import argparse
import tempfile
import threading
import time
from collections import defaultdict
from pathlib import Path

from app.cli.predict import find_images
from app.cli.predict import main as predict_cli
from bench.common import proc_cpu_seconds, write_result

SAMPLE_SECONDS = 0.2


def thread_cpu_seconds() -> dict[int, float]:
    """User plus system CPU time of each of this process's threads, by native thread id."""
    seconds = {}
    for task in Path("/proc/self/task").iterdir():
        try:
            seconds[int(task.name)] = proc_cpu_seconds(task / "stat")
        except OSError:  # the thread ended while being read
            continue
    return seconds


def role(native_id: int, python_threads: dict[int, str]) -> str:
    name = python_threads.get(native_id)
    if native_id == threading.main_thread().native_id:
        return "main: start-up, onnxruntime, answers, CSV"
    if name is not None and name.startswith("leukolens-prepare"):
        return "preparing pool: read, decode, recipe, checks"
    if name is not None:
        return f"other Python thread ({name.split('_')[0]})"
    return "not started by Python (OpenCV and onnxruntime pools)"


def measure(arguments: list[str]) -> tuple[float, dict[str, float]]:
    """Wall-clock seconds of one run and the CPU seconds of each thread role in it."""
    latest: dict[int, float] = {}
    python_threads: dict[int, str] = {}
    sampler_id: list[int] = []
    done = threading.Event()

    def sample() -> None:
        sampler_id.append(threading.get_native_id())
        while not done.is_set():
            python_threads.update({t.native_id: t.name for t in threading.enumerate()})
            latest.update(thread_cpu_seconds())
            done.wait(SAMPLE_SECONDS)

    before = thread_cpu_seconds()
    process_before = time.process_time()
    sampler = threading.Thread(target=sample, name="cpu-sampler", daemon=True)
    sampler.start()
    started = time.perf_counter()
    status = predict_cli(arguments)
    seconds = time.perf_counter() - started
    latest.update(thread_cpu_seconds())
    done.set()
    sampler.join()
    process_total = time.process_time() - process_before
    if status != 0:
        raise SystemExit(f"app.cli.predict exited with {status}")
    by_role: dict[str, float] = defaultdict(float)
    for native_id, cpu in latest.items():
        if native_id not in sampler_id:
            by_role[role(native_id, python_threads)] += cpu - before.get(native_id, 0.0)
    sampler_cpu = sum(latest.get(native_id, 0.0) for native_id in sampler_id)
    by_role["unattributed (threads after their last sample)"] = max(
        0.0, process_total - sampler_cpu - sum(by_role.values())
    )
    return seconds, dict(sorted(by_role.items()))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--model", help="model id (default: the store's default)")
    parser.add_argument("--int8", action="store_true", help="the model's int8 graph")
    parser.add_argument("--name", default="cli_cpu")
    args = parser.parse_args()
    images = sum(1 for _ in find_images([args.data]))
    with tempfile.TemporaryDirectory() as folder:
        arguments = [str(args.data), "--out", str(Path(folder) / "results.csv")]
        arguments += ["--model", args.model] if args.model else []
        arguments += ["--int8"] if args.int8 else []
        seconds, by_role = measure(arguments)
    total = sum(by_role.values())
    print(
        write_result(
            args.name,
            {
                "data": str(args.data),
                "images": images,
                "model": args.model or "default",
                "int8": args.int8,
                "wall_seconds": round(seconds, 2),
                "images_per_second": round(images / seconds, 1),
                "cores_busy": round(total / seconds, 2),
                "cpu_ms_per_image": round(1000 * total / images, 2),
                "cpu_ms_per_image_by_role": {
                    name: round(1000 * cpu / images, 2) for name, cpu in by_role.items()
                },
            },
        )
    )


if __name__ == "__main__":
    main()
