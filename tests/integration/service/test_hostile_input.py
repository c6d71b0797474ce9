"""What an attacker can send a real server: oversized bodies (refused unread, before the key is
checked), control characters and lone surrogates anywhere (422, never a 500, on SQLite and on
PostgreSQL), over-long URLs and headers, and forged, over-long or orphaned dashboard tokens."""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterable, Iterator
from typing import Any

import httpx
import jwt
import pytest
from prometheus_client.parser import text_string_to_metric_families
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import connect

from rapport.samples import Recording
from tests.fakes.wait import wait_until
from tests.integration.service.conftest import Service

LIMIT = 64 * 1024  # service.max_body_bytes in these tests


def _body_bytes_read(svc: Service) -> float:
    text = httpx.get(f"{svc.url}/metrics").text
    for family in text_string_to_metric_families(text):
        if family.name == "rapport_http_request_body_bytes":
            return sum(s.value for s in family.samples if s.name.endswith("_total"))
    raise AssertionError("no rapport_http_request_body_bytes on /metrics")


def _raw(svc: Service, head: bytes, body: Iterable[bytes] = ()) -> tuple[int, bytes, float]:
    """Sends a request head (and body chunks while the server reads them); (status, response
    body, seconds to the answer)."""
    host, port = svc.url.removeprefix("http://").split(":")
    t0 = time.monotonic()
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(head)
        try:
            for chunk in body:
                sock.sendall(chunk)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server answered and closed without reading the rest: the point
        data = b""
        while b"\r\n\r\n" not in data or len(data) < _length(data):
            more = sock.recv(65536)
            if not more:
                break
            data += more
    status = int(data.split(b" ", 2)[1])
    return status, data.partition(b"\r\n\r\n")[2], time.monotonic() - t0


def _length(data: bytes) -> int:
    head, _, _ = data.partition(b"\r\n\r\n")
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            return len(head) + 4 + int(line.split(b":")[1])
    return len(data) + 1


@pytest.fixture(scope="module")
def limited(
    tmp_path_factory: pytest.TempPathFactory, models_dir: Any, media_dir: Any
) -> Iterator[Service]:
    svc = Service(
        tmp_path_factory.mktemp("hostile"),
        models_dir,
        media_dir,
        {"service": {"max_body_bytes": LIMIT, "token_ttl_s": 600, "key_check_s": 0.5}},
    )
    svc.start()
    yield svc
    svc.stop()


def test_a_declared_oversized_body_is_refused_unread_before_the_key(limited: Service) -> None:
    before = _body_bytes_read(limited)
    head = (
        b"POST /v1/consents HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        + f"Content-Length: {300 * 2**20}\r\n\r\n".encode()
    )
    status, body, took = _raw(limited, head, [b"x" * 65536] * 16)
    assert status == 413 and took < 1.0
    assert json.loads(body)["error"]["code"] == "too_large"
    assert _body_bytes_read(limited) == before  # not a byte of it was read


def test_a_chunked_oversized_body_is_cut_off_at_the_limit(limited: Service) -> None:
    before = _body_bytes_read(limited)
    head = (
        b"POST /v1/consents HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"Transfer-Encoding: chunked\r\n\r\n"
    )
    chunk = b"%x\r\n%s\r\n" % (16384, b"[" * 16384)
    status, body, took = _raw(limited, head, [chunk] * 640)  # 10 MiB offered
    assert status == 413, body
    assert json.loads(body)["error"]["code"] == "too_large"
    read = _body_bytes_read(limited) - before
    assert LIMIT < read <= LIMIT + 4 * 16384, read  # read up to the limit, then refused
    assert took < 5.0


def test_a_small_body_without_a_key_is_refused_by_authentication(limited: Service) -> None:
    r = httpx.post(f"{limited.url}/v1/consents", json={"x": 1})
    assert r.status_code == 401


def test_urls_and_headers_are_bounded(limited: Service) -> None:
    long = limited.http.get("/v1/consents", params={"user_id": "u" * 5000})
    assert long.status_code == 414 and long.json()["error"]["code"] == "invalid_request"
    head = b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 40_000 + b"\r\n\r\n"
    status, body, _ = _raw(limited, head)
    assert status == 431 and json.loads(body)["error"]["code"] == "too_large"


# -- one text rule, and no database error becomes a 500 ---------------------------------------

NUL = "\x00"


def _cases(svc: Service, talk: Recording) -> list[tuple[str, httpx.Response]]:
    sid = svc.session(talk)["id"]
    ok_consent = svc.consent(sid, "hostile-input-1")
    ep = svc.http.post("/v1/webhooks", json={"url": "http://127.0.0.1:9/h"}).json()
    now = ok_consent["record"]["granted_at"]
    consent = {k: ok_consent["record"][k] for k in ("session_id", "purpose", "notice_version")}
    consent |= {
        "user_id": "hostile-input-2",
        "purpose_text": "shown to ada",
        "jurisdiction": "DE",
        "modalities": ["face"],
        "granted_at": now,
        "expires_at": ok_consent["record"]["expires_at"],
    }
    room = {"purpose": "self_coaching", "jurisdiction": "DE"}
    h = svc.http
    return [
        ("nul in a session id (path)", h.get("/v1/sessions/ses_%00x")),
        ("nul in a consent id (path)", h.post("/v1/consents/con%00/revoke")),
        ("nul in an endpoint id (path)", h.get("/v1/webhooks/ep_%00")),
        ("nul in a user id (path)", h.delete("/v1/subjects/a%00b")),
        ("del in a session id (path)", h.get("/v1/sessions/ses_%7F")),
        ("nul in a query", h.get("/v1/consents", params={"user_id": f"a{NUL}"})),
        ("nul in a query name", h.get("/v1/consents", params={f"user{NUL}": "a"})),
        ("nul in a room", h.post("/v1/sessions", json={**room, "room": f"r{NUL}"})),
        ("c1 control in a room", h.post("/v1/sessions", json={**room, "room": "r\x9bx"})),
        ("nul in purpose_text", h.post("/v1/consents", json={**consent, "purpose_text": NUL})),
        (
            "lone surrogate in user_id",
            h.post(
                "/v1/consents",
                content=json.dumps({**consent, "user_id": "\ud800"}),
                headers={"content-type": "application/json"},
            ),
        ),
        (
            "nul in a webhook description",
            h.post("/v1/webhooks", json={"url": "http://127.0.0.1:9/h", "description": f"a{NUL}"}),
        ),
        (
            "nul in an event type",
            h.post("/v1/webhooks", json={"url": "http://127.0.0.1:9/h", "event_types": [NUL]}),
        ),
        (
            "nul in a replay id",
            h.post(f"/v1/webhooks/{ep['id']}/dead-letters/replay", json={"ids": [NUL]}),
        ),
        (
            "nul in the session id of a consent",
            h.post("/v1/consents", json={**consent, "session_id": f"ses{NUL}"}),
        ),
    ]


@pytest.mark.parametrize("database", ["sqlite", "postgres"])
def test_control_characters_are_refused_with_422_everywhere(
    make_service: Any, short_talk: Recording, database: str, request: pytest.FixtureRequest
) -> None:
    overrides: dict[str, Any] = {}
    if database == "postgres":
        overrides = {"service": {"database_url": request.getfixturevalue("postgres_url")}}
    svc: Service = make_service(overrides)
    # A project of its own: the suite's PostgreSQL database is shared, and other tests read the
    # default project's consent log.
    svc.http.headers["authorization"] = f"Bearer {svc.new_key('hostile-input', 'admin')[1]}"
    for what, r in _cases(svc, short_talk):
        assert r.status_code == 422, f"{what}: {r.status_code} {r.text}"
        error = r.json()["error"]
        assert error["code"] == "invalid_request" and "\n" not in error["message"], what
    # Line breaks stay allowed where a person reads free text.
    sid = svc.session(short_talk)["id"]
    made = svc.consent(sid, "hostile-input-3", purpose_text="Line one.\nLine two.")
    assert made["record"]["purpose_text"] == "Line one.\nLine two."


# -- dashboard tokens ---------------------------------------------------------------------------


def _forge(svc: Service, claims: dict[str, Any]) -> str:
    secret = (svc.root / "data" / "token-secret").read_bytes()
    return jwt.encode(claims, secret, algorithm="HS256")


def _refused(svc: Service, session_id: str, token: str) -> bool:
    try:
        with connect(f"{svc.ws_url}/v1/events?session={session_id}&token={token}"):
            return False
    except InvalidStatus as e:
        return e.response.status_code == 403


def test_tokens_need_every_claim_a_bounded_life_and_a_live_key(
    limited: Service, short_talk: Recording
) -> None:
    svc = limited
    key_id, key = svc.new_key("default", "backend")
    backend = svc.client(key)
    sid = svc.session(short_talk)["id"]
    issued = backend.post(f"/v1/sessions/{sid}/tokens").json()
    good = jwt.decode(issued["token"], options={"verify_signature": False})
    assert good["key"] == key_id and good["exp"] - good["iat"] == 600
    assert not _refused(svc, sid, issued["token"])
    now = int(time.time())
    for missing in ("exp", "iat", "aud", "sub"):
        claims = {k: v for k, v in good.items() if k != missing}
        assert _refused(svc, sid, _forge(svc, claims)), f"a token without {missing!r}"
    forged = {
        "a life over token_ttl_s": {**good, "iat": now, "exp": now + 601},
        "issued in the future": {**good, "iat": now + 3600, "exp": now + 3900},
        "expired": {**good, "iat": now - 700, "exp": now - 100},
        "another audience": {**good, "aud": "someone-else"},
        "another session": {**good, "sub": "ses_other"},
        "another project": {**good, "project": "rival"},
        "no key": {k: v for k, v in good.items() if k != "key"},
    }
    for what, claims in forged.items():
        assert _refused(svc, sid, _forge(svc, claims)), what
    unsigned = jwt.encode(good, key="", algorithm="none")
    assert _refused(svc, sid, unsigned)

    # Revoking the key: an open connection is closed with 4401, new handshakes are refused.
    with connect(f"{svc.ws_url}/v1/events?session={sid}&token={issued['token']}") as ws:
        svc._cli("keys", "revoke", key_id)
        t0 = time.monotonic()
        code = wait_until(lambda: _close_code(ws), 10, "the connection to be closed")
    assert code == 4401 and time.monotonic() - t0 < 3.0
    assert _refused(svc, sid, issued["token"])
    # Requests: within service.key_check_s (valid keys are remembered that long).
    wait_until(lambda: backend.get(f"/v1/sessions/{sid}").status_code == 401 or None, 3, "a 401")


def _close_code(ws: Any) -> int | None:
    try:
        ws.recv(timeout=0.2)  # heartbeats until the close
    except TimeoutError:
        return None
    except ConnectionClosed as e:
        return e.rcvd.code if e.rcvd is not None else -1
    return None
