"""The toy model in a minute (docs/development.md) runs as written, on the fixture cells, with
its runs in a temporary folder: index, train, export, serve in a second terminal, ask that
server with curl, score a folder with the batch command line."""

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import httpx

ROOT = Path(__file__).parents[1]
DOC = ROOT / "docs" / "development.md"
PROGRAMS = {
    "./scripts/train": [sys.executable, "-m", "training"],
    "./scripts/predict": [sys.executable, "-m", "app.cli.predict"],
}


def toy_commands() -> list[str]:
    section = DOC.read_text(encoding="utf-8").split("## A toy model in a minute", 1)[1]
    section = section.split("\n## ", 1)[0]
    return [
        line.strip()
        for line in section.splitlines()
        if line.startswith(("    ./scripts/", "    LEUKOLENS_", "    curl "))
    ]


def test_the_toy_model_commands_run_as_written(tmp_path, start_server):
    commands = toy_commands()
    jobs = [
        c.split()[0] if c.startswith(("./scripts/predict", "curl")) else c.split()[1]
        for c in commands
    ]
    assert jobs == ["index", "train", "export", "./scripts/serve", "curl", "./scripts/predict"]
    base = None
    for line in commands:
        line = line.replace("runs/", f"{tmp_path}/runs/")
        if line.startswith("LEUKOLENS_MODEL_STORE="):
            # The second terminal: the same server, on a free port rather than 8010.
            assignment, _ = line.split(" ", 1)
            assert re.search(r"--port 8010\b", line)
            base = start_server(LEUKOLENS_MODEL_STORE=assignment.split("=", 1)[1])
            assert httpx.get(f"{base}/api/v1/models").json()["default"] == "toy-model"
            continue
        if line.startswith("curl "):
            assert base is not None, "the curl line asks the server the line before starts"
            words = shlex.split(line.replace("http://127.0.0.1:8010", base))
            done = subprocess.run(
                [*words, "--silent", "--show-error", "--fail-with-body"],
                cwd=ROOT,
                capture_output=True,
                text=True,
                timeout=60,
                check=False,
            )
            assert done.returncode == 0, (line, done.stdout, done.stderr)
            assert httpx.Response(200, content=done.stdout).json()["model"]["id"] == "toy-model"
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
    cells = ROOT / "tests/fixtures/cnmc/training_data/fold_1/all"
    assert len(rows) == 1 + len(list(cells.glob("*.png")))
