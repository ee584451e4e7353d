import socket

import pytest


class UploadServer:
    """`python -m app` on the test models, and raw connections to it, closed at teardown."""

    def __init__(self, start_server, model_store) -> None:
        self._start_server = start_server
        self._model_store = model_store
        self._connections: list[socket.socket] = []
        self.port = 0

    def start(self, **environment: str) -> str:
        """Start the server with these LEUKOLENS_* settings besides the model store: its base
        URL once /readyz is 200."""
        base = self._start_server(LEUKOLENS_MODEL_STORE=str(self._model_store), **environment)
        self.port = int(base.rsplit(":", 1)[1])
        return base

    def connect(self, count: int, head: bytes = b"") -> list[socket.socket]:
        """`count` connections to the server, each having sent `head` when given."""
        connections = [socket.create_connection(("127.0.0.1", self.port)) for _ in range(count)]
        self._connections.extend(connections)
        for connection in connections:
            if head:
                connection.sendall(head)
        return connections

    def close_all(self) -> None:
        for connection in self._connections:
            connection.close()


@pytest.fixture
def upload_server(start_server, model_store):
    server = UploadServer(start_server, model_store)
    yield server
    server.close_all()
