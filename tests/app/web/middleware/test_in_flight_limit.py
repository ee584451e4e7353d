import asyncio
import json
import time

import httpx
from fastapi import FastAPI, Request
from fastapi.testclient import TestClient
from starlette.types import ASGIApp, Message

from app.inference.in_flight import InFlight
from app.main import create_app
from app.web.middleware.in_flight_limit import InFlightLimitMiddleware
from tests.conftest import asgi_scope

MULTIPART = [("content-type", "multipart/form-data; boundary=b")]


def test_past_the_in_flight_limit_a_request_is_refused_before_its_body(settings, asgi_post):
    """The in-flight limit used to be checked only once the body had been read."""
    full = settings.model_copy(update={"max_in_flight": 1})
    with TestClient(create_app(full)) as client:
        in_flight = client.app.state.in_flight
        in_flight.count = 1  # one complete request being answered
        pulled, status, body = asgi_post(
            client.app, "/api/v1/predict", [b"x" * 65536] * 10, MULTIPART, portal=client.portal
        )
        assert (pulled, status) == (0, 503)
        assert body == {"detail": "the server is busy; retry shortly"}
        assert client.get("/api/v1/models").status_code == 200  # only uploads are counted
        in_flight.count = 0
        assert client.get("/healthz").status_code == 200


def test_the_count_goes_back_down_after_each_request(settings, real_cell_png):
    one_at_a_time = settings.model_copy(update={"max_in_flight": 1})
    with TestClient(create_app(one_at_a_time)) as client:
        for name in ("a.png", "b.png", "c.png", "junk.png"):
            data = real_cell_png if name != "junk.png" else b"junk"
            client.post("/api/v1/predict", files={"file": (name, data)})
        response = client.post("/api/v1/predict", files={"file": ("d.png", real_cell_png)})
    assert response.status_code == 200


def make_limited_app(
    max_in_flight: int,
) -> tuple[InFlight, InFlightLimitMiddleware, asyncio.Event]:
    """An app whose route reads the body, takes a place in the count as the prediction service
    does, then waits for `release`; the limiter around it, reading the same count."""
    app = FastAPI()
    release = asyncio.Event()
    in_flight = InFlight(max_in_flight)

    @app.post("/upload")
    async def upload(request: Request) -> dict[str, int]:
        received = len(await request.body())
        with in_flight.admitted():
            await release.wait()
        return {"received": received}

    limiter = InFlightLimitMiddleware(
        app, in_flight=in_flight, paths={"/upload"}, drain_limit=1_000_000
    )
    return in_flight, limiter, release


async def post(
    asgi: ASGIApp, chunks: list[bytes], before_last: asyncio.Event | None = None
) -> tuple[int, dict[str, str], dict]:
    """POST `chunks` to /upload; the last one waits for `before_last` when given. Status,
    headers and JSON of the answer."""
    queue = list(chunks)

    async def receive() -> Message:
        if not queue:
            await asyncio.sleep(3600)
            return {"type": "http.disconnect"}
        if len(queue) == 1 and before_last is not None:
            await before_last.wait()
        body = queue.pop(0)
        return {"type": "http.request", "body": body, "more_body": bool(queue)}

    sent: list[Message] = []

    async def send(message: Message) -> None:
        sent.append(message)

    await asyncio.wait_for(asgi(asgi_scope("/upload"), receive, send), 20)
    start = next(m for m in sent if m["type"] == "http.response.start")
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    headers = {k.decode(): v.decode() for k, v in start["headers"]}
    return start["status"], headers, json.loads(body)


async def settle() -> None:
    for _ in range(20):
        await asyncio.sleep(0)


def test_an_upload_still_arriving_holds_no_slot():
    """64 uploads trickling 1 byte/s once held every slot and complete requests got 503."""

    async def main() -> None:
        in_flight, limiter, release = make_limited_app(1)
        last_chunk = asyncio.Event()
        slow = asyncio.create_task(post(limiter, [b"x"] * 3, before_last=last_chunk))
        await settle()
        assert in_flight.count == 0  # head and two chunks in, the body not complete
        release.set()
        status, _, body = await post(limiter, [b"y" * 10])
        assert (status, body) == (200, {"received": 10})
        last_chunk.set()
        status, _, body = await slow
        assert (status, body) == (200, {"received": 3})
        assert in_flight.count == 0

    asyncio.run(main())


def test_a_body_that_completes_when_every_slot_is_taken_gets_503_with_retry_after():
    async def main() -> None:
        in_flight, limiter, release = make_limited_app(1)
        last_chunk = asyncio.Event()
        slow = asyncio.create_task(post(limiter, [b"x"] * 3, before_last=last_chunk))
        holder = asyncio.create_task(post(limiter, [b"y"]))  # complete: takes the one slot
        await settle()
        assert in_flight.count == 1
        last_chunk.set()
        status, headers, body = await slow
        assert (status, body) == (503, {"detail": "the server is busy; retry shortly"})
        assert headers["retry-after"] == "1"
        assert "connection" not in headers  # the body was read whole: the connection may stay
        release.set()
        assert (await holder)[0] == 200
        assert in_flight.count == 0

    asyncio.run(main())


def test_a_real_server_answers_complete_predictions_while_uploads_trickle(
    upload_server, real_cell_png
):
    """Against `python -m app` with 2 slots: 4 uploads that have sent their head and part of
    their body (the minimum rate switched off, so they stay) leave the slots to 3 normal
    predictions, answered 200 one after the other."""
    base = upload_server.start(
        LEUKOLENS_MAX_IN_FLIGHT="2", LEUKOLENS_MIN_UPLOAD_BYTES_PER_SECOND="0"
    )
    head = (
        b"POST /api/v1/predict HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n"
        b"Content-Type: multipart/form-data; boundary=b\r\n\r\n--b\r\n"
    )
    upload_server.connect(4, head)
    time.sleep(0.5)  # let the server take their heads
    statuses = [
        httpx.post(
            f"{base}/api/v1/predict", files={"file": ("cell.png", real_cell_png)}
        ).status_code
        for _ in range(3)
    ]
    upload_server.close_all()
    assert statuses == [200, 200, 200]
