"""Device-side: decode the carried lossless WebP cells back to PNG (the same pixels), where
`pipeline.py` reads them (`$DATA`, default /tmp/data/fold1)."""

import os
import sys
from multiprocessing import Pool
from pathlib import Path

import cv2

SRC, DST = Path("gpu_bundle/fold1"), Path(os.environ.get("DATA", "/tmp/data/fold1"))


def convert(path: Path) -> None:
    out = DST / path.relative_to(SRC).with_suffix(".png")
    out.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(out), cv2.imread(str(path), cv2.IMREAD_UNCHANGED))


if __name__ == "__main__":
    paths = sorted(SRC.rglob("*.webp"))
    with Pool(min(16, os.cpu_count() or 1)) as pool:
        pool.map(convert, paths)
    print("prepared", len(paths), "cells", file=sys.stderr)
