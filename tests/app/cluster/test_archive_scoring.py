"""Archive scoring on a local Ray instance with 2 CPUs equals the local command row for row."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.cluster


def test_the_ray_csv_equals_the_local_csv_row_for_row(cnmc_root, tmp_path):
    archive = tmp_path / "archive"
    shutil.copytree(cnmc_root, archive)
    (archive / "not-an-image.png").write_bytes(b"\x89PNG\r\n\x1a\n but not really")
    (archive / "=cmd().png").write_bytes(b"GIF89a")  # a formula-like name, refused as well

    def score(*options: str) -> tuple[list[str], str]:
        out = tmp_path / f"results{len(options)}.csv"
        finished = subprocess.run(
            [sys.executable, "-m", "app.cli.predict", *options, str(archive), "--out", str(out)],
            capture_output=True,
            text=True,
            timeout=600,
            cwd=tmp_path,
            # This tree's app/, whichever checkout the environment installed.
            env={**os.environ, "PYTHONPATH": str(Path(__file__).parents[3])},
        )
        assert finished.returncode == 0, finished.stderr[-4000:]
        return out.read_text().splitlines(), finished.stderr

    local, _ = score()
    on_ray, log = score("--ray", "--ray-cpus", "2")
    assert "scored on Ray with 2 actors" in log
    assert len(local) == 1 + 18 + 2
    assert on_ray == local
    assert sum(",error," in row for row in on_ray[1:]) == 2  # the header names the column too
