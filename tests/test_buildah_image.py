"""The Dockerfile built for real, with `scripts/buildah-image` (buildah, no Docker engine), on a
stand-in for `python:3.11-slim`, then served from the image: ready, a prediction, a user that is
not root, no torch inside, and the image's own HEALTHCHECK passing."""

import json
import os
import shutil
import socket
import subprocess
from pathlib import Path

import httpx
import pytest

ROOT = Path(__file__).parents[1]
SCRIPT = ROOT / "scripts" / "buildah-image"
TAG = "leukolens-under-test"
pytestmark = pytest.mark.docker


def why_buildah_cannot_run() -> str | None:
    for tool in ("buildah", "debootstrap"):
        if shutil.which(tool) is None:
            return (
                f"{tool} is not installed (apt-get install -y buildah debootstrap, as .ci/run does)"
            )
    if os.geteuid() != 0:
        return "buildah's chroot isolation with vfs storage needs root here"
    return None


def mounts_under(folder: Path) -> list[str]:
    lines = Path("/proc/self/mountinfo").read_text().splitlines()
    return [line.split()[4] for line in lines if line.split()[4].startswith(str(folder))]


@pytest.fixture(scope="module")
def built_image(tmp_path_factory):
    reason = why_buildah_cannot_run()
    if reason:
        pytest.skip(reason)
    storage = tmp_path_factory.mktemp("buildah")
    build = subprocess.run(
        [str(SCRIPT), "--stand-in-base", "--storage", str(storage), "--tag", TAG],
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    assert build.returncode == 0, build.stderr[-3000:]
    buildah = [
        "buildah",
        "--root",
        str(storage / "root"),
        "--runroot",
        str(storage / "run"),
        "--storage-driver",
        "vfs",
    ]
    yield storage, buildah
    # Never delete through a mount that outlived a run (chroot isolation mounts /proc and /dev).
    assert not mounts_under(storage), mounts_under(storage)
    shutil.rmtree(storage, ignore_errors=True)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def run_in_image(buildah: list[str], *command: str, env: dict[str, str] | None = None):
    container = subprocess.run(
        [*buildah, "from", TAG], capture_output=True, text=True, check=True
    ).stdout.strip()
    try:
        settings = [f"--env={name}={value}" for name, value in (env or {}).items()]
        run = [*buildah, "run", "--isolation", "chroot", "--network", "host", *settings]
        return subprocess.run(
            [*run, container, "--", *command],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
    finally:
        subprocess.run([*buildah, "rm", container], capture_output=True, check=False)


def test_the_image_builds_and_serves_as_documented(built_image, real_cell_png, serve_in_session):
    storage, buildah = built_image
    config = json.loads(
        subprocess.run(
            [*buildah, "inspect", "--type", "image", TAG],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    )["Docker"]["config"]
    assert config["User"] == "leukolens"
    assert config["Cmd"] == ["python", "-m", "app"]
    healthcheck = config["Healthcheck"]["Test"]
    assert healthcheck[0] == "CMD"

    port = free_port()
    serve = [str(SCRIPT), "--storage", str(storage), "--tag", TAG, "--no-build", "--serve"]
    with serve_in_session([*serve, str(port)], port, 120, "the image", kill_after=60) as base:
        answer = httpx.post(
            f"{base}/api/v1/predict", files={"file": ("cell.png", real_cell_png)}, timeout=30
        )
        assert answer.status_code == 200, answer.text
        assert answer.json()["model"]["id"] == httpx.get(f"{base}/api/v1/models").json()["default"]
        # The image's own health check, run inside the image, against the serving container.
        probe = run_in_image(buildah, *healthcheck[1:], env={"LEUKOLENS_PORT": str(port)})
        assert probe.returncode == 0, probe.stderr
        wrong_port = run_in_image(
            buildah, *healthcheck[1:], env={"LEUKOLENS_PORT": str(free_port())}
        )
        assert wrong_port.returncode != 0
        inside = run_in_image(
            buildah,
            "python",
            "-c",
            "import os, importlib.util as u; print(os.getuid(), u.find_spec('torch') is None,"
            " os.access('/srv/data', os.W_OK))",
        )
        assert inside.stdout.split() == ["10001", "True", "True"], inside.stderr


def test_help_prints_the_usage_and_exits_0():
    done = subprocess.run([str(SCRIPT), "--help"], capture_output=True, text=True, check=False)
    assert done.returncode == 0
    assert "scripts/buildah-image [--stand-in-base]" in done.stdout
    assert "--serve PORT" in done.stdout
    wrong = subprocess.run([str(SCRIPT), "--bogus"], capture_output=True, text=True, check=False)
    assert wrong.returncode == 2
    assert wrong.stderr.startswith("unknown argument: --bogus\n")


def test_a_port_in_use_is_said_in_one_line_before_any_build(tmp_path):
    reason = why_buildah_cannot_run()
    if reason:
        pytest.skip(reason)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = subprocess.run(
            [str(SCRIPT), "--storage", str(tmp_path), "--serve", str(port)],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    assert done.returncode == 3
    assert done.stderr == (
        f"port {port} on 127.0.0.1 is already in use: stop what serves there or pick another "
        "--serve PORT\n"
    )
    assert not any(tmp_path.iterdir())  # nothing was built
