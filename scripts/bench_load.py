"""Load generators for scripts/bench_service.py, run in a process of their own (so the server's
figures are not the client's): many HTTP/1.1 keep-alive clients on raw asyncio streams (a full
HTTP library costs more CPU per request than the server under test can spare on a small machine),
and many WebSocket clients (the `websockets` library). Each returns plain dicts (picklable), with
the CPU seconds the client process used, so a reader can see whether the client was the limit.
"""

from __future__ import annotations

import asyncio
import json
import random
import resource
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit


def raise_fd_limit() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


class Http:
    """One keep-alive HTTP/1.1 connection; reconnects after an error or a `Connection: close`."""

    def __init__(self, url: str, key: str) -> None:
        u = urlsplit(url)
        self.host, self.port = u.hostname or "127.0.0.1", u.port or 80
        self._auth = f"Host: {self.host}:{self.port}\r\nAuthorization: Bearer {key}\r\n"
        self._r: asyncio.StreamReader | None = None
        self._w: asyncio.StreamWriter | None = None

    async def request(self, method: str, path: str, body: Any = None) -> tuple[int, bytes]:
        if self._w is None:
            self._r, self._w = await asyncio.open_connection(self.host, self.port)
        assert self._r is not None
        data = b"" if body is None else json.dumps(body).encode()
        head = f"{method} {path} HTTP/1.1\r\n{self._auth}"
        if body is not None:
            head += "Content-Type: application/json\r\n"
        head += f"Content-Length: {len(data)}\r\n\r\n"
        try:
            self._w.write(head.encode() + data)
            raw = await self._r.readuntil(b"\r\n\r\n")
            lines = raw.decode("latin-1").split("\r\n")
            status = int(lines[0].split()[1])
            headers = {k.lower(): v.strip() for k, _, v in (h.partition(":") for h in lines[1:])}
            payload = await self._r.readexactly(int(headers.get("content-length", "0")))
        except BaseException:
            self.close()
            raise
        if headers.get("connection", "").lower() == "close":
            self.close()
        return status, payload

    def close(self) -> None:
        if self._w is not None:
            self._w.close()
        self._r = self._w = None


def consent_body(session_id: str, user_id: str) -> dict[str, Any]:
    """A valid self-coaching consent for one person in one session, granted now for an hour."""
    now = datetime.now(UTC)
    return {
        "user_id": user_id,
        "session_id": session_id,
        "purpose": "self_coaching",
        "purpose_text": "rapport shows you how engaged you came across, for your eyes only.",
        "notice_version": "2026-11",
        "jurisdiction": "DE",
        "modalities": ["face", "voice", "text"],
        "granted_at": now.isoformat(),
        "expires_at": (now + timedelta(hours=1)).isoformat(),
    }


def _room_session(i: int) -> dict[str, Any]:
    return {
        "room": f"bench-room-{i}",
        "purpose": "self_coaching",
        "jurisdiction": "DE",
        "setting": "consumer",
    }


async def _workers(
    url: str, key: str, clients: int, jobs: Iterator[tuple[str, str, Any]], until: float | None
) -> dict[str, Any]:
    """`clients` connections take jobs (method, path, body) until the jobs or the time run out:
    each request's latency, status and body."""
    lat: list[float] = []
    bodies: list[bytes] = []
    errors: list[str] = []

    async def worker() -> None:
        http = Http(url, key)
        try:
            for method, path, body in jobs:
                if until is not None and time.perf_counter() > until:
                    return
                t0 = time.perf_counter()
                try:
                    status, payload = await http.request(method, path, body)
                except (OSError, asyncio.IncompleteReadError, ValueError) as e:
                    errors.append(f"{type(e).__name__}: {e}")
                    continue
                lat.append(time.perf_counter() - t0)
                if status >= 300:
                    errors.append(f"HTTP {status}: {payload[:200]!r}")
                else:
                    bodies.append(payload)
        finally:
            http.close()

    cpu0, t0 = time.process_time(), time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(clients)))
    wall = time.perf_counter() - t0
    return {
        "lat": lat,
        "bodies": bodies,
        "errors": errors,
        "wall": wall,
        "client_cpu": (time.process_time() - cpu0) / wall,
    }


def make_sessions(url: str, key: str, n: int, offset: int) -> list[str]:
    """n room sessions (one per consent to come), created with 20 connections (setup, not
    measured: an answer 503 is retried, up to five rounds)."""
    ids: list[str] = []
    todo = list(range(offset, offset + n))
    for _ in range(5):
        jobs = iter([("POST", "/v1/sessions", _room_session(i)) for i in todo])
        got = asyncio.run(_workers(url, key, 20, jobs, None))
        ids += [json.loads(b)["id"] for b in got["bodies"]]
        if len(ids) == n:
            return ids
        todo = todo[: n - len(ids)]  # fresh room names are not needed: rooms may repeat
        time.sleep(1)
    raise RuntimeError(f"creating sessions: {got['errors'][:3]}")


def consent_writes(url: str, key: str, clients: int, sessions: list[str]) -> dict[str, Any]:
    """One consent per session, `clients` at a time (after a short warm-up): latencies, errors,
    the client's CPU share, and the new consents' ids."""

    async def run() -> dict[str, Any]:
        warm = iter([("GET", "/v1/purposes", None)] * clients * 4)
        await _workers(url, key, clients, warm, None)
        jobs = iter(
            [
                ("POST", "/v1/consents", consent_body(sid, f"user-{i}"))
                for i, sid in enumerate(sessions)
            ]
        )
        got = await _workers(url, key, clients, jobs, None)
        got["ids"] = [json.loads(b)["id"] for b in got.pop("bodies")]
        return got

    return asyncio.run(run())


def consent_reads(url: str, key: str, clients: int, ids: list[str], seconds: float) -> dict:
    """GET /v1/consents/{id} of random ids from `clients` connections for `seconds`."""
    rng = random.Random(7)

    def reads() -> Iterator[tuple[str, str, Any]]:
        while ids:
            yield ("GET", f"/v1/consents/{rng.choice(ids)}", None)

    got = asyncio.run(_workers(url, key, clients, reads(), time.perf_counter() + seconds))
    got.pop("bodies")
    return got


def websocket_clients(
    ws_url: str, key: str, n: int, ready_path: str, timeout_s: float
) -> dict[str, Any]:
    """n WebSocket clients on one session's events: connects them all, touches `ready_path`,
    then reads until the server closes each. Per client: (arrival, seq, emitted_at) of every
    event, and the close code."""
    from pathlib import Path

    from websockets.asyncio.client import connect

    raise_fd_limit()

    async def run() -> dict[str, Any]:
        got: list[list[tuple[float, int, str, str]]] = [[] for _ in range(n)]
        closes: list[int | None] = [None] * n
        errors: list[str] = []
        conns: list[Any] = [None] * n

        async def open_one(i: int) -> None:
            try:
                conns[i] = await connect(
                    ws_url,
                    additional_headers={"authorization": f"Bearer {key}"},
                    open_timeout=60,
                    max_queue=None,
                )
            except Exception as e:
                errors.append(f"connect {i}: {type(e).__name__}: {e}")

        for start in range(0, n, 100):  # a hundred at a time: no storm on the accept queue
            await asyncio.gather(*(open_one(i) for i in range(start, min(n, start + 100))))

        async def read(i: int) -> None:
            ws = conns[i]
            if ws is None:
                return
            try:
                async for message in ws:
                    at = time.time()
                    m = json.loads(message)
                    if "seq" in m:
                        got[i].append((at, m["seq"], m["emitted_at"], m["type"]))
            except Exception as e:
                errors.append(f"read {i}: {type(e).__name__}: {e}")
            closes[i] = ws.close_code

        cpu0 = time.process_time()
        Path(ready_path).touch()
        t0 = time.perf_counter()
        try:
            await asyncio.wait_for(asyncio.gather(*(read(i) for i in range(n))), timeout_s)
        except TimeoutError:
            errors.append(f"not every socket was closed within {timeout_s:.0f} s")
        wall = time.perf_counter() - t0
        return {
            "events": got,
            "closes": closes,
            "errors": errors,
            "connected": sum(c is not None for c in conns),
            "client_cpu": (time.process_time() - cpu0) / wall,
        }

    return asyncio.run(run())
