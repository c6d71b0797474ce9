"""`Allow` that lists every method of a path, on 405 and on OPTIONS.

FastAPI makes one route per method, and the router answers a method mismatch with the `Allow` of
the first route whose path matched: `OPTIONS /v1/sessions/{id}` said `Allow: GET` and left out
DELETE. This middleware answers first, for HTTP requests whose path some route serves but whose
method none does:

- OPTIONS: 204 with `Allow` (every method served at the path, plus OPTIONS);
- any other method: 405 with the same `Allow` and the error model (`method_not_allowed`).

Constraints: requests that a route fully matches, unknown paths (404) and WebSockets pass
through untouched; no CORS headers are added (the service serves no browser API but the
WebSocket). Matching reuses the routes' own `matches`, so path converters and prefixes count as
they do; it runs once per request, and once per probed method only when the method is not served.
"""

from __future__ import annotations

import json

from starlette.routing import BaseRoute, Match
from starlette.types import ASGIApp, Receive, Scope, Send

PROBED = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE")
"""The methods probed for `Allow` (OPTIONS is always allowed: this middleware answers it)."""


class AllowedMethods:
    def __init__(self, app: ASGIApp, routes: list[BaseRoute]) -> None:
        self.app = app
        self.routes = routes

    def _match(self, scope: Scope) -> Match:
        best = Match.NONE
        for route in self.routes:
            match, _ = route.matches(scope)
            if match == Match.FULL:
                return match
            if match == Match.PARTIAL:
                best = match
        return best

    def allowed(self, scope: Scope) -> list[str] | None:
        """The methods served at this request's path; None when a route serves the request
        itself, or none serves its path. Each method is probed through the routes' own
        `matches` (FastAPI's included routers have no method list to read)."""
        if self._match(scope) != Match.PARTIAL:
            return None
        methods = [m for m in PROBED if self._match({**scope, "method": m}) == Match.FULL]
        return [*methods, "OPTIONS"]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        allowed = self.allowed(scope) if scope["type"] == "http" else None
        if allowed is None:
            await self.app(scope, receive, send)
            return
        allow = ", ".join(allowed)
        if scope["method"] == "OPTIONS":
            status, body = 204, b""
            headers = [(b"allow", allow.encode())]
        else:
            status = 405
            message = f"{scope['method']} is not allowed here; allowed: {allow}"
            error = {"error": {"code": "method_not_allowed", "message": message}}
            body = json.dumps(error).encode()
            headers = [
                (b"allow", allow.encode()),
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
            ]
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})
