"""The Dockerfile's own steps, followed without a Docker engine (none runs here).

COPY lines are replayed under a temporary root, the RUN pip line runs in a fresh virtual
environment, and the CMD starts with the image's ENV: it must become ready and hold no torch.
"""

import json
import os
import re
import shlex
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

ROOT = Path(__file__).parents[1]
pytestmark = pytest.mark.docker


def dockerfile_instructions() -> list[tuple[str, str]]:
    text = (ROOT / "Dockerfile").read_text().replace("\\\n", " ")
    lines = [
        line.strip()
        for line in text.splitlines()
        if line.strip() and not line.strip().startswith("#")
    ]
    return [tuple(line.split(None, 1)) for line in lines]  # type: ignore[misc]


def parse_env(argument: str) -> dict[str, str]:
    return dict(word.split("=", 1) for word in shlex.split(argument))


def replay_copy(sources: list[str], destination: str, fake_root: Path) -> None:
    """Docker's COPY: a folder's contents go into the destination; files go into it when it
    ends with '/' (or there are several sources), else become it."""
    target = fake_root / destination.lstrip("/")
    into_folder = destination.endswith("/") or len(sources) > 1
    for source in sources:
        path = ROOT / source
        if path.is_dir():
            shutil.copytree(
                path,
                target,
                dirs_exist_ok=True,
                ignore=shutil.ignore_patterns("__pycache__", "*.pyc"),
            )
        else:
            (target if into_folder else target.parent).mkdir(parents=True, exist_ok=True)
            shutil.copy(path, target / path.name if into_folder else target)


@pytest.fixture(scope="module")
def image(tmp_path_factory):
    """A fresh venv built by the Dockerfile's steps; returns (python, env, cmd)."""
    fake_root = tmp_path_factory.mktemp("image-root")
    venv = fake_root / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    bin_dir = venv / "bin"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("VIRTUAL_ENV", "PYTHONPATH"))}
    env["PATH"] = f"{bin_dir}:{env['PATH']}"
    cmd: list[str] = []
    healthcheck: list[str] = []
    for instruction, argument in dockerfile_instructions():
        if instruction == "ENV":
            # Absolute paths in the image live under the temporary root here.
            env |= {
                name: str(fake_root / value.lstrip("/")) if value.startswith("/") else value
                for name, value in parse_env(argument).items()
            }
        elif instruction == "COPY":
            *sources, destination = shlex.split(argument)
            replay_copy(sources, destination, fake_root)
        elif instruction == "RUN" and "pip install" in argument:
            command = re.sub(r"(?<![\w/])/tmp/build", str(fake_root / "tmp/build"), argument)
            subprocess.run(["bash", "-c", command], check=True, env=env, cwd=fake_root)
        elif instruction == "CMD":
            cmd = json.loads(argument)
        elif instruction == "HEALTHCHECK":
            healthcheck = json.loads(argument.split("CMD", 1)[1])
    assert cmd, "the Dockerfile has no CMD in exec form"
    assert healthcheck, "the Dockerfile has no HEALTHCHECK in exec form"
    return bin_dir / "python", env, cmd, healthcheck


def test_the_image_holds_serving_dependencies_only(image):
    python, env, _, _ = image
    listing = subprocess.run(
        [str(python), "-m", "pip", "list", "--format=json"],
        env=env,
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    versions = {p["name"].lower().replace("_", "-"): p["version"] for p in json.loads(listing)}
    installed = set(versions)
    assert {"onnxruntime", "fastapi", "opencv-python-headless", "leukolens"} <= installed
    assert not {"torch", "torchvision", "timm"} & installed
    pinned = {}
    for line in (ROOT / "constraints.txt").read_text().splitlines():
        if "==" in line and not line.startswith("#"):
            name, version = line.split("==")
            pinned[name.lower().replace("_", "-")] = version.strip()
    for name in ("onnxruntime", "fastapi", "numpy", "opencv-python-headless"):
        assert versions[name] == pinned[name]  # the image installs what the suite passed with


def test_the_image_cmd_serves_the_bundled_model(image, real_cell_png, tmp_path, until_ready):
    python, env, cmd, healthcheck = image
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = env | {"LEUKOLENS_HOST": "127.0.0.1", "LEUKOLENS_PORT": str(port)}
    command = [str(python) if word == "python" else word for word in cmd]
    # Run from an empty folder, as the image's WORKDIR: the installed package must suffice.
    process = subprocess.Popen(
        command, env=env, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    base = f"http://127.0.0.1:{port}"
    try:
        until_ready(base, process, 90, "the image's CMD")
        response = httpx.post(f"{base}/api/v1/predict", files={"file": ("cell.png", real_cell_png)})
        assert response.status_code == 200
        assert (
            response.json()["model"]["id"] == httpx.get(f"{base}/api/v1/models").json()["default"]
        )
        assert (Path(env["LEUKOLENS_DATA_DIR"]) / "audit.sqlite3").is_file()
        # The browser UI too: templates and static files travel in the image's package.
        page = httpx.get(f"{base}/")
        assert page.status_code == 200
        assert "/static/js/main.js" in page.text
        assert httpx.get(f"{base}/static/js/main.js").status_code == 200
        # The health check follows LEUKOLENS_PORT, as the server does.
        probe = [str(python) if w == "python" else w for w in healthcheck]
        assert subprocess.run(probe, env=env, timeout=30, check=False).returncode == 0
        wrong_port = env | {"LEUKOLENS_PORT": str(port + 1 if port < 65535 else port - 1)}
        assert subprocess.run(probe, env=wrong_port, timeout=30, check=False).returncode != 0
    finally:
        process.terminate()
        process.communicate(timeout=20)


def test_the_build_context_leaves_out_what_is_local_to_a_machine():
    """What a checkout gathers (the buildah storage, the records' data folder, runs, databases)
    must not travel into `docker build`: gigabytes, and records that are not the image's."""
    ignored = set((ROOT / ".dockerignore").read_text().split())
    assert {".venv", ".git", "runs", "build", "data", "*.sqlite3*", "*.journal"} <= ignored
