"""What a request may bring, checked before routing, authentication or parsing: a body of at
most `service.max_body_bytes` (a larger declared Content-Length is refused unread; a chunked body
is cut off at the limit), and a path and query of bounded length without control characters
(service/text.py), and headers of at most `service.max_header_bytes` in all (431; the HTTP parser,
uvicorn's h11, also drops a connection whose header block trickles in past that size)."""

from __future__ import annotations

import json
from urllib.parse import parse_qsl

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from rapport.service.metrics import BODY_BYTES_READ
from rapport.service.text import bad_char, describe

MAX_PATH = 2048
MAX_QUERY = 4096


async def _refuse(send: Send, status: int, code: str, message: str) -> None:
    body = json.dumps({"error": {"code": code, "message": message}}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                (b"connection", b"close"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


class RequestLimits:
    """Pure ASGI middleware, installed outermost so nothing runs on a refused request."""

    def __init__(self, app: ASGIApp, max_body_bytes: int, max_header_bytes: int) -> None:
        self.app, self.max_body_bytes, self.max_header_bytes = app, max_body_bytes, max_header_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        problem = _url_problem(scope) or _header_problem(scope, self.max_header_bytes)
        if problem is not None:
            status, message = problem
            if scope["type"] == "websocket":  # refused at the handshake (HTTP 403)
                await send({"type": "websocket.close", "code": 1008})
                return
            code = "too_large" if status == 431 else "invalid_request"
            await _refuse(send, status, code, message)
            return
        if scope["type"] == "websocket":
            await self.app(scope, receive, send)
            return
        limit = self.max_body_bytes
        declared = _content_length(scope)
        if declared is not None and declared > limit:
            await _refuse(send, 413, "too_large", f"the body is over {limit} bytes")
            return
        read = 0

        async def limited() -> Message:
            nonlocal read
            message = await receive()
            if message["type"] == "http.request":
                size = len(message.get("body", b""))
                read += size
                BODY_BYTES_READ.inc(size)
                if read > limit:
                    # An HTTPException raised here passes through FastAPI's body parsing (which
                    # re-raises it) to the error handlers: a 413 in the error model.
                    raise HTTPException(413, f"the body is over {limit} bytes")
            return message

        await self.app(scope, limited, send)


def _content_length(scope: Scope) -> int | None:
    for name, value in scope["headers"]:
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


def _header_problem(scope: Scope, limit: int) -> tuple[int, str] | None:
    size = sum(len(name) + len(value) + 4 for name, value in scope["headers"])
    return (431, f"the headers are over {limit} bytes") if size > limit else None


def _url_problem(scope: Scope) -> tuple[int, str] | None:
    path: str = scope["path"]
    query: bytes = scope.get("query_string", b"")
    if len(path) > MAX_PATH or len(query) > MAX_QUERY:
        return 414, f"the URL is too long (path at most {MAX_PATH}, query {MAX_QUERY} bytes)"
    c = bad_char(path)
    if c is not None:
        return 422, f"path: contains {describe(c)}"
    for name, value in parse_qsl(query.decode("latin-1"), keep_blank_values=True):
        c = bad_char(name) or bad_char(value)
        if c is not None:
            return 422, f"query {name!r}: contains {describe(c)}"
    return None
