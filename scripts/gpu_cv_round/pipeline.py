"""Device-side orchestration of the second cross-validation round (see README.md beside it).

EfficientNet-Lite0/1/2 under recipe `b`, a ConvNeXt-atto student distilled from the Lite0 fold
models, and the same ConvNeXt without a teacher (the control), each a 3-fold CV followed by
`training external --cv`. Every step is a project command, run in parallel; `$OUT/runs.tar.gz`
is rewritten after each step (checkpoints left out), so a run stopped by its time limit still
returns what finished. `SMOKE=1` runs the same steps on the CPU in minutes.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tarfile
import time
from pathlib import Path

START = time.monotonic()
BUDGET_SECONDS = float(os.environ.get("BUDGET_S", "540"))
SMOKE = os.environ.get("SMOKE") == "1"
OUT = Path(os.environ["OUT"])
RUNS = Path(os.environ.get("RUNS", "/tmp/runs"))
DATA = os.environ.get("DATA", "/tmp/data/fold1")
EXTERNAL = "gpu_bundle/external"
TRAINING = [sys.executable, "-m", "training"]
POLL_SECONDS = 2

COMMON = [
    *("--data", DATA, "--folds", "3", "--checkpoint", "last", "--threads", "2"),
    *("--device", "cpu" if SMOKE else "cuda", "--workers", "0" if SMOKE else "3"),
    *(("--max-images-per-subject", "3") if SMOKE else ()),
]
RECIPE_B = [
    *("--img-size", "128", "--crop", "cell", "--crop-size", "352", "--standardize-cell-colour"),
    *("--scale-jitter", "0.25", "--intensity-jitter", "0.4", "--stain-jitter", "0.05"),
    *("--color-jitter", "0.2", "--subject-balanced"),
]
CONVNEXT = ["--arch", "convnext_atto", "--epochs", "1" if SMOKE else "24", "--lr", "2e-4"]


def lite(variant: int) -> list[str]:
    weights = f"gpu_bundle/weights/effl{variant}_backbone_fp16.pth"
    epochs = "1" if SMOKE else "8"
    arch = f"tf_efficientnet_lite{variant}"
    return ["--arch", arch, "--init-weights", weights, "--epochs", epochs, "--lr", "3e-4"]


TEACHER = "l0-cell-appearance-balanced"
STUDENT = "convnext-atto-distilled-from-l0"
FIRST_WAVE = {
    TEACHER: lite(0),
    "l1-cell-appearance-balanced": lite(1),
    "l2-cell-appearance-balanced": lite(2),
    "convnext-atto-control": CONVNEXT,
}


def log(*parts: object) -> None:
    line = f"[{time.monotonic() - START:6.1f}s] " + " ".join(map(str, parts))
    with (OUT / "pipeline.log").open("a") as file:
        print(line, file=file)
    print(line, flush=True)


def pack() -> None:
    partial = OUT / "runs.tar.gz.part"
    with tarfile.open(partial, "w:gz") as tar:
        tar.add(RUNS, arcname="runs", filter=lambda t: None if t.name.endswith(".pt") else t)
    partial.replace(OUT / "runs.tar.gz")


def start(name: str, arguments: list[str]) -> subprocess.Popen[bytes]:
    log("start", name, " ".join(arguments))
    with (RUNS / f"{name}.log").open("wb") as output:
        return subprocess.Popen([*TRAINING, *arguments], stdout=output, stderr=subprocess.STDOUT)


def cross_validation(name: str, flags: list[str]) -> subprocess.Popen[bytes]:
    return start(name, ["cv", *COMMON, *flags, *RECIPE_B, "--out", str(RUNS / name)])


def run() -> None:
    running = {name: cross_validation(name, flags) for name, flags in FIRST_WAVE.items()}
    externals: dict[str, subprocess.Popen[bytes]] = {}
    while running or externals:
        time.sleep(POLL_SECONDS)
        if time.monotonic() - START > BUDGET_SECONDS:
            for name, process in {**running, **externals}.items():
                process.kill()
                log("stopped at the time budget:", name)
            return
        for name, process in list(running.items()):
            if process.poll() is None:
                continue
            del running[name]
            log("done", name, "rc", process.returncode)
            if process.returncode == 0:
                arguments = ["external", "--cv", str(RUNS / name), "--data", EXTERNAL]
                externals[name] = start(f"external-{name}", arguments)
                if name == TEACHER:
                    teacher = ["--teacher", str(RUNS / TEACHER)]
                    running[STUDENT] = cross_validation(STUDENT, [*CONVNEXT, *teacher])
            pack()
        for name, process in list(externals.items()):
            if process.poll() is not None:
                del externals[name]
                log("done external", name, "rc", process.returncode)
                pack()


if __name__ == "__main__":
    RUNS.mkdir(parents=True, exist_ok=True)
    try:
        run()
    finally:
        pack()
        log("finished")
