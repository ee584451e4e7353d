import asyncio
import time

import httpx
from fastapi import FastAPI
from fastapi.testclient import TestClient

from app.main import create_app
from app.web.middleware.concurrency_limit import ConcurrencyLimitMiddleware


def make_app(limit: int) -> tuple[ConcurrencyLimitMiddleware, asyncio.Event]:
    """/slow waits for the event; /healthz and /readyz answer at once."""
    app = FastAPI()
    release = asyncio.Event()

    @app.get("/slow")
    async def slow() -> dict[str, str]:
        await release.wait()
        return {"status": "done"}

    @app.get("/healthz")
    @app.get("/readyz")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    limiter = ConcurrencyLimitMiddleware(
        app, limit=limit, exempt={"/healthz", "/readyz"}, drain_limit=1024
    )
    return limiter, release


async def get(limiter: ConcurrencyLimitMiddleware, path: str) -> httpx.Response:
    transport = httpx.ASGITransport(app=limiter)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        return await client.get(path)


def test_past_the_limit_requests_get_503_but_health_checks_are_answered():
    async def main() -> None:
        limiter, release = make_app(2)
        held = [asyncio.create_task(get(limiter, "/slow")) for _ in range(2)]
        for _ in range(20):
            await asyncio.sleep(0)
        assert limiter.in_progress == 2
        refused = await get(limiter, "/slow")
        assert refused.status_code == 503
        assert refused.json() == {"detail": "the server is busy; retry shortly"}
        assert refused.headers["retry-after"] == "1"
        for path in ("/healthz", "/readyz"):
            assert (await get(limiter, path)).status_code == 200
        release.set()
        assert [response.status_code for response in await asyncio.gather(*held)] == [200, 200]
        assert limiter.in_progress == 0
        assert (await get(limiter, "/slow")).status_code == 200

    asyncio.run(main())


def test_no_limit_leaves_the_middleware_out(settings):
    with TestClient(create_app(settings.model_copy(update={"limit_concurrency": None}))) as client:
        layer = client.app.middleware_stack
        names = []
        while layer is not None:
            names.append(type(layer).__name__)
            layer = getattr(layer, "app", None)
    assert "ConcurrencyLimitMiddleware" not in names
    assert "SecurityHeadersMiddleware" in names


def test_a_real_server_answers_health_checks_while_slow_requests_fill_every_slot(upload_server):
    """300 connections trickling to /api/v1/reviews once made uvicorn's limit_concurrency
    answer /healthz 503, and a liveness probe would restart a healthy pod. Here 8 slow review
    bodies (the minimum rate switched off, so they stay) against a limit of 4."""
    base = upload_server.start(
        LEUKOLENS_LIMIT_CONCURRENCY="4", LEUKOLENS_MIN_UPLOAD_BYTES_PER_SECOND="0"
    )
    head = (
        b"POST /api/v1/reviews HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"Content-Length: 1000\r\n\r\n{"
    )
    upload_server.connect(8, head)  # closed once the test is over
    deadline = time.monotonic() + 10
    busy = httpx.get(f"{base}/api/v1/models")
    while busy.status_code != 503 and time.monotonic() < deadline:
        time.sleep(0.1)
        busy = httpx.get(f"{base}/api/v1/models")
    assert busy.status_code == 503  # every slot taken by the slow reviews
    for _ in range(3):
        assert httpx.get(f"{base}/healthz").status_code == 200
        assert httpx.get(f"{base}/readyz").status_code == 200
    assert busy.json() == {"detail": "the server is busy; retry shortly"}
    assert busy.headers["retry-after"] == "1"
