from fastapi import FastAPI, Request
from fastapi.testclient import TestClient

from app.body_size_limit import DeclaredBodySizeMiddleware


def make_client(limit: int) -> TestClient:
    app = FastAPI()

    @app.post("/api/echo")
    @app.post("/other")
    async def echo(request: Request) -> dict[str, int]:
        return {"received": len(await request.body())}

    app.add_middleware(DeclaredBodySizeMiddleware, max_body_bytes=limit, path_prefix="/api")
    return TestClient(app)


def test_declared_large_bodies_get_json_413():
    response = make_client(100).post("/api/echo", content=b"x" * 101)
    assert response.status_code == 413
    assert response.json() == {"detail": "request body exceeds 100 bytes"}


def test_bodies_within_the_limit_and_other_paths_pass():
    client = make_client(100)
    assert client.post("/api/echo", content=b"x" * 100).json() == {"received": 100}
    assert client.post("/other", content=b"x" * 500).json() == {"received": 500}
