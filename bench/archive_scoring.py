"""The archive scorer on a local Ray instance against the local command, on the same cores.

    python -m bench.archive_scoring [--images 1000] [--cpus 2]

Both commands score the same real C-NMC cells (../shared/data) end to end, start-up included
(a Ray instance takes seconds to start), and the CSVs are compared row for row. images/s is
images over the command's wall time.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.common import write_result

DATA = Path(__file__).parents[1] / "../shared/data/C-NMC_Leukemia"


def timed(command: list[str], environment: dict[str, str]) -> float:
    started = time.perf_counter()
    subprocess.run(command, check=True, env=environment, capture_output=True, timeout=1800)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--images", type=int, default=1000)
    parser.add_argument("--cpus", type=int, default=2)
    arguments = parser.parse_args()
    cells = sorted(DATA.resolve().rglob("*.png"))[: arguments.images]
    with tempfile.TemporaryDirectory() as folder_name:
        folder = Path(folder_name)
        archive = folder / "archive"
        archive.mkdir()
        for cell in cells:
            (archive / cell.name).symlink_to(cell)
        # Both on the same cores: taskset pins each command to the first `cpus` CPUs.
        cores = ",".join(str(core) for core in range(arguments.cpus))
        environment = {**os.environ}
        base = ["taskset", "-c", cores, sys.executable, "-m", "app.cli.predict", str(archive)]
        local_seconds = timed([*base, "--out", str(folder / "local.csv")], environment)
        ray_seconds = timed(
            [
                *base,
                "--ray",
                "--ray-cpus",
                str(arguments.cpus),
                "--out",
                str(folder / "ray.csv"),
            ],
            environment,
        )
        identical = (folder / "local.csv").read_bytes() == (folder / "ray.csv").read_bytes()
    result = {
        "command": f"python -m bench.archive_scoring --images {len(cells)} --cpus {arguments.cpus}",
        "images": len(cells),
        "cpus": arguments.cpus,
        "local_seconds": round(local_seconds, 2),
        "ray_seconds": round(ray_seconds, 2),
        "local_images_per_second": round(len(cells) / local_seconds, 1),
        "ray_images_per_second": round(len(cells) / ray_seconds, 1),
        "csv_identical": identical,
    }
    print(result)
    write_result("archive_scoring", result)


if __name__ == "__main__":
    main()
