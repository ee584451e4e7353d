from fastapi import FastAPI, Request
from fastapi.testclient import TestClient

from app.body_limit import BodySizeLimitMiddleware


def make_client(limit: int) -> TestClient:
    app = FastAPI()

    @app.post("/echo")
    async def echo(request: Request) -> dict[str, int]:
        return {"received": len(await request.body())}

    app.add_middleware(BodySizeLimitMiddleware, max_body_bytes=limit)
    return TestClient(app)


def test_small_bodies_pass():
    assert make_client(100).post("/echo", content=b"x" * 100).json() == {"received": 100}


def test_declared_large_bodies_are_refused_before_reading():
    response = make_client(100).post("/echo", content=b"x" * 101)
    assert response.status_code == 413
    assert "100 bytes" in response.json()["detail"]


def test_streamed_bodies_are_counted():
    def chunks():
        for _ in range(10):
            yield b"x" * 50

    response = make_client(100).post("/echo", content=chunks())
    assert response.status_code == 413


def test_oversized_multipart_on_the_app_is_413(settings, real_cell_png):
    from app.main import create_app

    tight = settings.model_copy(update={"max_upload_bytes": 1000, "max_batch_files": 1})
    with TestClient(create_app(tight)) as client:
        response = client.post("/api/v1/predict", files={"file": ("c.png", real_cell_png * 40)})
    assert response.status_code == 413
