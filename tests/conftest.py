from contextlib import contextmanager
from pathlib import Path

import pytest

FIXTURE_ROOT = Path(__file__).parent / "fixtures" / "cnmc"


@pytest.fixture
def cnmc_root() -> Path:
    """18 real C-NMC fold-1 cells: subjects 16, 23, 30 (ALL) and H10, H14, H22 (HEM)."""
    return FIXTURE_ROOT


def fixture_cell_pngs(count: int) -> list[bytes]:
    """`count` different real C-NMC cells (18 at most), in a fixed order."""
    cells = sorted((FIXTURE_ROOT / "training_data/fold_1").glob("*/*.png"))
    assert count <= len(cells)
    return [path.read_bytes() for path in cells[:count]]


@pytest.fixture
def real_cell_png() -> bytes:
    return (FIXTURE_ROOT / "training_data/fold_1/all/UID_16_11_1_all.png").read_bytes()


def _save_test_model(
    model_dir: Path,
    nodes: list,
    initializers: list,
    *,
    input_size: int,
    architecture: str,
    preprocessing,
) -> Path:
    """An ONNX graph with the exported interface (image -> logit, probability_all) and its card."""
    import onnx
    from onnx import TensorProto, helper

    from app.core.manifest import (
        ModelInput,
        ModelManifest,
        ModelOutputs,
        Provenance,
        SubjectCounts,
        ThresholdChoice,
        TrainingData,
        file_sha256,
        write_manifest,
    )

    model_dir.mkdir(parents=True, exist_ok=True)
    image_shape = ["batch", 3, input_size, input_size]
    graph = helper.make_graph(
        nodes,
        architecture,
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, image_shape)],
        [
            helper.make_tensor_value_info("logit", TensorProto.FLOAT, ["batch"]),
            helper.make_tensor_value_info("probability_all", TensorProto.FLOAT, ["batch"]),
        ],
        initializer=initializers,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    model.ir_version = 9
    onnx.checker.check_model(model, full_check=True)
    onnx.save(model, str(model_dir / "model.onnx"))
    manifest = ModelManifest(
        id=model_dir.name,
        version="1",
        created="2026-01-01T00:00:00Z",
        architecture=architecture,
        head="timm",
        parameters=0,
        input=ModelInput(size=input_size),
        outputs=ModelOutputs(gradcam=None),
        threshold=ThresholdChoice(value=0.5, source="fixed for tests"),
        preprocessing=preprocessing,
        training_data=TrainingData(
            folds=["none"],
            subjects=[SubjectCounts(subject="0", label="ALL", images=0)],
            images_all=0,
            images_hem=0,
        ),
        provenance=Provenance(training_command="(built by tests)", run_config={}, software={}),
        onnx_sha256=file_sha256(model_dir / "model.onnx"),
    )
    write_manifest(manifest, model_dir)
    return model_dir


def write_mean_brightness_model(model_dir: Path, input_size: int = 32) -> Path:
    """A real ONNX graph whose logit is 4 x (mean input - 0.1): small, torch-free, and
    predictable for tests."""
    from onnx import TensorProto, helper

    from app.core.recipe import PreprocessConfig

    return _save_test_model(
        model_dir,
        [
            helper.make_node("ReduceMean", ["image", "axes"], ["mean"], keepdims=0),
            helper.make_node("Sub", ["mean", "offset"], ["centred"]),
            helper.make_node("Mul", ["centred", "gain"], ["logit"]),
            helper.make_node("Sigmoid", ["logit"], ["probability_all"]),
        ],
        [
            helper.make_tensor("axes", TensorProto.INT64, [3], [1, 2, 3]),
            helper.make_tensor("offset", TensorProto.FLOAT, [], [0.1]),
            helper.make_tensor("gain", TensorProto.FLOAT, [], [4.0]),
        ],
        input_size=input_size,
        architecture="mean-brightness-test-graph",
        preprocessing=PreprocessConfig(
            contrast="none", input_size=input_size, mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0)
        ),
    )


def write_channel_mean_model(model_dir: Path, weight: tuple[float, float, float]) -> Path:
    """image -> per-channel means (the features) -> Gemm -> logit: the exported interface with
    a last linear layer, as `training export` writes it, for the adaptation tests."""
    from onnx import TensorProto, helper

    from app.core.recipe import ContrastMethod, CropMethod, PreprocessConfig

    size = 32
    return _save_test_model(
        model_dir,
        [
            helper.make_node("ReduceMean", ["image", "axes"], ["features"], keepdims=0),
            helper.make_node(
                "Gemm", ["features", "head.weight", "head.bias"], ["linear"], transB=1
            ),
            helper.make_node("Squeeze", ["linear", "squeeze_axes"], ["logit"]),
            helper.make_node("Sigmoid", ["logit"], ["probability_all"]),
        ],
        [
            helper.make_tensor("axes", TensorProto.INT64, [2], [2, 3]),
            helper.make_tensor("head.weight", TensorProto.FLOAT, [1, 3], list(weight)),
            helper.make_tensor("head.bias", TensorProto.FLOAT, [1], [-2.0]),
            helper.make_tensor("squeeze_axes", TensorProto.INT64, [1], [1]),
        ],
        input_size=size,
        architecture="channel-means-test-graph",
        preprocessing=PreprocessConfig(
            contrast=ContrastMethod.NONE,
            crop=CropMethod.CENTER,
            crop_size=64,
            input_size=size,
            mean=(0.0, 0.0, 0.0),
            std=(1.0, 1.0, 1.0),
        ),
    )


@pytest.fixture
def brightness_model_dir(tmp_path) -> Path:
    return write_mean_brightness_model(tmp_path / "brightness")


@pytest.fixture
def model_store(tmp_path) -> Path:
    """A store of two torch-free test models; "brightness" is the default."""
    store = tmp_path / "store"
    return write_store(store)


def write_store(store: Path) -> Path:
    """Two test models, their card checksums in store.json, and "brightness" the default."""
    from app.core.model_registry import record_model

    write_mean_brightness_model(store / "brightness")
    write_mean_brightness_model(store / "brightness-64", input_size=64)
    record_model(store, store / "brightness", default=True)
    record_model(store, store / "brightness-64")
    return store


@pytest.fixture
def settings(model_store):
    from app.settings import Settings

    return Settings(
        model_store=model_store,
        worker_threads=2,
        max_batch_files=4,
        audit_log_path=model_store.parent / "audit.sqlite3",
    )


@pytest.fixture
def client(settings):
    from fastapi.testclient import TestClient

    from app.main import create_app

    with TestClient(create_app(settings)) as test_client:
        yield test_client


def png_bytes(rgb) -> bytes:
    import cv2

    ok, buffer = cv2.imencode(".png", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    assert ok
    return buffer.tobytes()


@pytest.fixture
def encode_png():
    return png_bytes


def review_json(scored: dict, sample_id: str, **fields) -> dict:
    """A review's JSON on the image of the prediction `scored`, for `sample_id`, with `fields`
    (decision, reviewer, comment)."""
    return {
        "request_id": scored["request_id"],
        "image_sha256": scored["image_sha256"],
        "sample_id": sample_id,
        **fields,
    }


def wait_until_ready(base: str, process, seconds: float, what: str) -> None:
    """Poll `base`/readyz until 200; fail with the process's output if it exits first."""
    import time

    import httpx

    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if process.poll() is not None:
            output = process.communicate()[0] if process.stdout else ""
            pytest.fail(f"{what} exited with {process.returncode}: {(output or '')[-3000:]}")
        try:
            if httpx.get(f"{base}/readyz", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.3)
    pytest.fail(f"{what} did not become ready within {seconds:g} s")


@pytest.fixture
def until_ready():
    """`wait_until_ready(base, process, seconds, what)` for tests that start a server."""
    return wait_until_ready


@contextmanager
def serving_in_session(
    command: list[str], port: int, seconds: float, what: str, *, kill_after=None, **popen
):
    """Start `command` (`popen`: Popen's other arguments) in a new session, so that its children
    go with it, its output piped; yield its base URL on `port` once /readyz is 200 (see
    `wait_until_ready`). Then SIGTERM the session and wait for it: 30 s at most (the wait's
    TimeoutExpired fails the test), or with `kill_after`, that many seconds, then SIGKILL."""
    import os
    import signal
    import subprocess

    server = subprocess.Popen(
        command,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
        **popen,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_until_ready(base, server, seconds, what)
        yield base
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        if kill_after is None:
            server.communicate(timeout=30)
        else:
            try:
                server.communicate(timeout=kill_after)
            except subprocess.TimeoutExpired:
                os.killpg(server.pid, signal.SIGKILL)
                server.communicate()


@pytest.fixture
def serve_in_session():
    """`serving_in_session(command, port, seconds, what, *, kill_after, **popen)` for tests
    that start a server process with children of its own."""
    return serving_in_session


class ServerLauncher:
    """Starts `python -m app` on free loopback ports and stops every server it started."""

    def __init__(self, audit_dir: Path) -> None:
        self.audit_dir = audit_dir
        self.processes: list = []

    def __call__(self, **environment: str) -> str:
        """Start a server with these LEUKOLENS_* settings; its base URL once /readyz is 200."""
        import os
        import socket
        import subprocess
        import sys
        import time

        import httpx

        environment.setdefault("LEUKOLENS_AUDIT_LOG_PATH", str(self.audit_dir / "audit.sqlite3"))
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        # A file, not a pipe: a pipe nobody reads fills up and blocks the server's logging.
        log_path = self.audit_dir / f"server-{port}.log"
        with log_path.open("w") as log:
            process = subprocess.Popen(
                [sys.executable, "-m", "app", "--host", "127.0.0.1", "--port", str(port)],
                env={**os.environ, **environment},
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        self.processes.append(process)
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if process.poll() is not None:
                pytest.fail(f"server exited with {process.returncode}: {log_path.read_text()}")
            try:
                if httpx.get(f"{base}/readyz", timeout=2).status_code == 200:
                    return base
            except httpx.TransportError:
                pass
            time.sleep(0.2)
        pytest.fail("server did not become ready within 60 s")

    def stop_all(self) -> None:
        for process in self.processes:
            process.terminate()
            process.wait(timeout=20)


@pytest.fixture
def start_server(tmp_path_factory):
    launcher = ServerLauncher(tmp_path_factory.mktemp("audit"))
    yield launcher
    launcher.stop_all()


@pytest.fixture(scope="module")
def module_model_store(tmp_path_factory) -> Path:
    return write_store(tmp_path_factory.mktemp("module-store"))


@pytest.fixture(scope="module")
def module_server_launcher(tmp_path_factory):
    launcher = ServerLauncher(tmp_path_factory.mktemp("audit"))
    yield launcher
    launcher.stop_all()


@pytest.fixture(scope="module")
def module_server(module_server_launcher, module_model_store) -> str:
    """One server on two torch-free test models, shared by a module's tests."""
    return module_server_launcher(
        LEUKOLENS_MODEL_STORE=str(module_model_store), LEUKOLENS_MAX_BATCH_FILES="8"
    )


@pytest.fixture
def bundled_client(tmp_path):
    """The app on the bundled model store, as the README's serve command runs it."""
    from fastapi.testclient import TestClient

    from app.main import create_app
    from app.settings import Settings

    with TestClient(create_app(Settings(audit_log_path=tmp_path / "audit.sqlite3"))) as client:
        yield client


def asgi_scope(path: str, headers=(), server: tuple[str, int] = ("127.0.0.1", 80)) -> dict:
    """The ASGI scope of an HTTP/1.1 POST to `path` from 127.0.0.1 with these (name, value)
    headers."""
    return {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [(k.lower().encode(), v.encode()) for k, v in headers],
        "client": ("127.0.0.1", 1),
        "server": server,
    }


def drive_asgi(
    app, path: str, chunks: list[bytes], headers=(), *, portal=None, complete=False, delay=0.0
):
    """POST `chunks` to the ASGI app directly: how many chunks it pulled before it answered,
    its status and its JSON. With a TestClient's portal, inside that client's running app;
    `complete`: the last chunk ends the body (else the client keeps it open); `delay`: seconds
    before each chunk arrives."""
    import asyncio
    import json

    pulled = 0

    async def receive():
        nonlocal pulled
        if pulled < len(chunks):
            pulled += 1
            if delay:
                await asyncio.sleep(delay)
            more = not complete or pulled < len(chunks)
            return {"type": "http.request", "body": chunks[pulled - 1], "more_body": more}
        await asyncio.sleep(3600)  # the client waits for the answer
        return {"type": "http.disconnect"}

    sent = []

    async def send(message):
        sent.append(message)

    async def call():
        await asyncio.wait_for(app(asgi_scope(path, headers), receive, send), 20)

    if portal is not None:
        portal.call(call)
    else:
        asyncio.run(call())
    start = next(m for m in sent if m["type"] == "http.response.start")
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    return pulled, start["status"], json.loads(body)


@pytest.fixture
def asgi_post():
    return drive_asgi
