"""Load on a real server over loopback, bounded in count and time."""

import asyncio
from collections import Counter

import httpx
import pytest

pytestmark = pytest.mark.load


async def hammer(base: str, payload: bytes, total: int, concurrency: int) -> list[httpx.Response]:
    queue: asyncio.Queue[int] = asyncio.Queue()
    for number in range(total):
        queue.put_nowait(number)
    responses: list[httpx.Response] = []
    # Connections idle for 2 s are dropped by the client before the server's 5 s keep-alive
    # can close one under a request just sent on it.
    limits = httpx.Limits(
        max_connections=concurrency, max_keepalive_connections=concurrency, keepalive_expiry=2.0
    )
    async with httpx.AsyncClient(base_url=base, timeout=60, limits=limits) as client:

        async def worker() -> None:
            while not queue.empty():
                number = queue.get_nowait()
                files = {"file": (f"cell-{number}.png", payload, "image/png")}
                responses.append(await client.post("/api/v1/predict", files=files))

        await asyncio.wait_for(asyncio.gather(*(worker() for _ in range(concurrency))), 300)
    return responses


def test_2000_requests_at_32_clients_all_answered_without_5xx(module_server, real_cell_png):
    responses = asyncio.run(hammer(module_server, real_cell_png, total=2000, concurrency=32))
    statuses = Counter(response.status_code for response in responses)
    assert len(responses) == 2000
    assert statuses == {200: 2000}
    request_ids = {response.json()["request_id"] for response in responses}
    assert len(request_ids) == 2000
    metrics = httpx.get(f"{module_server}/metrics").text
    # Concurrent requests were micro-batched: some onnxruntime calls held several images.
    assert (
        'leukolens_inference_batch_size_bucket{le="1.0",model="brightness"} 2000.0' not in metrics
    )
    assert httpx.get(f"{module_server}/healthz").status_code == 200


def test_beyond_the_queue_depth_the_server_sheds_load_with_503(
    module_server_launcher, module_model_store, real_cell_png
):
    base = module_server_launcher(
        LEUKOLENS_MODEL_STORE=str(module_model_store), LEUKOLENS_MAX_IN_FLIGHT="2"
    )
    responses = asyncio.run(hammer(base, real_cell_png, total=300, concurrency=32))
    statuses = Counter(response.status_code for response in responses)
    assert len(responses) == 300
    assert set(statuses) <= {200, 503}
    assert statuses[503] > 0
    assert statuses[200] > 0
    shed = next(r for r in responses if r.status_code == 503)
    assert shed.headers["retry-after"] == "1"
    assert shed.json() == {"detail": "the server is busy; retry shortly"}
    assert httpx.get(f"{base}/readyz").status_code == 200
