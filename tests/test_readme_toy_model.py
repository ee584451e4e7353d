"""The README's "toy model in a minute" runs as written (on the fixture cells, in a temporary
folder): index, train, export, serve, predict."""

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import httpx

ROOT = Path(__file__).parents[1]
DATA = "../shared/data/C-NMC_Leukemia"
PROGRAMS = {
    "./scripts/train": [sys.executable, "-m", "training"],
    "./scripts/predict": [sys.executable, "-m", "app.cli.predict"],
}


def toy_commands() -> list[str]:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme.split("## A toy model in a minute", 1)[1].split("\n## ", 1)[0]
    return [
        line.strip()
        for line in section.splitlines()
        if line.startswith("    ./scripts/") or line.startswith("    LEUKOLENS_")
    ]


def test_the_toy_model_commands_run_as_written(cnmc_root, tmp_path, start_server, real_cell_png):
    commands = toy_commands()
    jobs = [c.split()[0] if c.startswith("./scripts/predict") else c.split()[1] for c in commands]
    assert jobs == ["index", "train", "export", "./scripts/serve", "./scripts/predict"]
    for line in commands:
        line = line.replace(DATA, str(cnmc_root)).replace("runs/", f"{tmp_path}/runs/")
        if line.startswith("LEUKOLENS_MODEL_STORE="):
            assignment, _ = line.split(" ", 1)
            store = assignment.split("=", 1)[1]
            port = re.search(r"--port (\d+)", line)
            assert port is not None
            base = start_server(LEUKOLENS_MODEL_STORE=store)  # on a free port, not 8010
            models = httpx.get(f"{base}/api/v1/models").json()
            assert models["default"] == "toy-model"
            answer = httpx.post(f"{base}/api/v1/predict", files={"file": ("c.png", real_cell_png)})
            assert answer.status_code == 200
            assert answer.json()["model"]["id"] == "toy-model"
            continue
        program, *arguments = shlex.split(line)
        result = subprocess.run(
            [*PROGRAMS[program], *arguments],
            cwd=ROOT,
            env={**os.environ},
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
        )
        assert result.returncode == 0, (line, result.stderr[-2000:])
    rows = (tmp_path / "runs" / "toy.csv").read_text().splitlines()
    assert len(rows) == 1 + len(list((cnmc_root / "training_data/fold_1/all").glob("*.png")))
