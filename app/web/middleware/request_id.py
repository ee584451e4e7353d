"""A request id on every response (X-Request-ID), always the server's own.

A client's X-Request-ID cannot be trusted to be unique, so it never becomes the key of a log
line or an audit row; when it is sane it is kept beside the server's id (X-Client-Request-ID
on the response, `client_request_id` in the audit log) so that the client can match them up.
"""

from __future__ import annotations

import re
import uuid

from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.logging_config import current_client_request_id, current_request_id

HEADER = "x-request-id"
CLIENT_HEADER = "x-client-request-id"
_ACCEPTABLE = re.compile(r"^[A-Za-z0-9._-]{1,64}$")


class RequestIdMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        offered = dict(scope["headers"]).get(HEADER.encode(), b"").decode("latin-1")
        client_id = offered if _ACCEPTABLE.match(offered) else ""
        request_id = uuid.uuid4().hex
        state = scope.setdefault("state", {})
        state["request_id"] = request_id
        state["client_request_id"] = client_id
        token = current_request_id.set(request_id)
        client_token = current_client_request_id.set(client_id)

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                headers[HEADER] = request_id
                if client_id:
                    headers[CLIENT_HEADER] = client_id
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            current_client_request_id.reset(client_token)
            current_request_id.reset(token)
