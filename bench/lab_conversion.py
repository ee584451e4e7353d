"""RGB → LAB over the non-black box against OpenCV's whole-frame conversion, on real frames.

    python -m bench.lab_conversion --data ../shared/data/C-NMC_Leukemia [--images 200]

Both are timed over the same decoded fold-1 frames, alternating, with OpenCV on one thread (the
CPU time each costs) and on its default threads (the wall time one call takes), and checked
equal frame by frame. Results go to `bench/results/lab_conversion.json`.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np

from app.core.image_decoding import decode_image
from app.core.recipe import rgb_to_lab
from bench.common import write_result
from bench.pipeline import sample_images

DEFAULT_DATA = Path(__file__).parents[1] / "tests" / "fixtures" / "cnmc"


def spread_frames(data: Path, count: int) -> list[np.ndarray]:
    return [decode_image(path.read_bytes()) for path in sample_images(data, count)]


def ms_per_frame(convert: Callable[[np.ndarray], np.ndarray], frames: list[np.ndarray]) -> float:
    started = time.perf_counter()
    for frame in frames:
        convert(frame)
    return (time.perf_counter() - started) / len(frames) * 1000


def whole_frame(rgb: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(rgb, cv2.COLOR_RGB2LAB)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--images", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    frames = spread_frames(args.data, args.images)
    equal = sum(np.array_equal(rgb_to_lab(f), whole_frame(f)) for f in frames)
    default_threads = cv2.getNumThreads()
    results: dict[str, object] = {"images": len(frames), "bitwise_equal": equal}
    for label, threads in (("one_opencv_thread", 1), ("opencv_default_threads", default_threads)):
        cv2.setNumThreads(threads)
        whole, boxed = [], []
        for _ in range(args.rounds):
            whole.append(ms_per_frame(whole_frame, frames))
            boxed.append(ms_per_frame(rgb_to_lab, frames))
        results[label] = {
            "threads": threads,
            "whole_frame_ms": round(statistics.median(whole), 3),
            "non_black_box_ms": round(statistics.median(boxed), 3),
            "speedup": round(statistics.median(whole) / statistics.median(boxed), 2),
        }
    cv2.setNumThreads(default_threads)
    print(write_result("lab_conversion", results).read_text())


if __name__ == "__main__":
    main()
