"""Bad input to every endpoint of a real server: always a 4xx with a JSON body
`{"error": {"code", "message"}}` and a one-line message, never a 500."""

from __future__ import annotations

import functools
import json
import os
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import connect

from rapport.samples import Recording
from tests.integration.service.conftest import Service

UNKNOWN = "ses_000000000000000000000000"

# Every endpoint that needs an API key: (method, path template, JSON body or None).
PROTECTED: list[tuple[str, str, Any]] = [
    ("POST", "/v1/consents", {}),
    ("GET", "/v1/consents/log", None),
    ("GET", "/v1/consents?user_id=u", None),
    ("GET", "/v1/consents/con_x", None),
    ("POST", "/v1/consents/con_x/revoke", None),
    ("POST", "/v1/sessions", {}),
    ("GET", "/v1/sessions/ses_x", None),
    ("POST", "/v1/sessions/ses_x/start", None),
    ("DELETE", "/v1/sessions/ses_x", None),
    ("POST", "/v1/sessions/ses_x/tokens", None),
    ("POST", "/v1/webhooks", {}),
    ("GET", "/v1/webhooks", None),
    ("GET", "/v1/webhooks/ep_x", None),
    ("DELETE", "/v1/webhooks/ep_x", None),
    ("POST", "/v1/webhooks/ep_x/rotate-secret", None),
    ("POST", "/v1/webhooks/ep_x/enable", None),
    ("GET", "/v1/webhooks/ep_x/dead-letters", None),
    ("POST", "/v1/webhooks/ep_x/dead-letters/replay", {}),
    ("DELETE", "/v1/subjects/u", None),
]


def error_of(
    r: httpx.Response, status: int | tuple[int, ...], code: str | None = None
) -> dict[str, Any]:
    """The error object of a response that must be a JSON client error."""
    where = f"{r.request.method} {r.request.url}"
    expected = status if isinstance(status, tuple) else (status,)
    assert r.status_code in expected, f"{where}: {r.status_code} {r.text}"
    assert r.headers["content-type"].startswith("application/json"), where
    body = r.json()
    assert set(body) == {"error"}, (where, body)
    error = body["error"]
    assert isinstance(error, dict), (where, body)
    assert isinstance(error.get("code"), str) and error["code"], (where, body)
    message = error.get("message")
    assert isinstance(message, str) and message.strip(), (where, body)
    assert "\n" not in message and "\r" not in message, (where, message)
    if code is not None:
        assert error["code"] == code, (where, body)
    return error


def consent_body(session_id: str, /, **fields: Any) -> dict[str, Any]:
    now = datetime.now(UTC)
    return {
        "user_id": "presenter",
        "session_id": session_id,
        "purpose": "self_coaching",
        "purpose_text": "rapport shows you how engaged you came across, for your eyes only.",
        "notice_version": "2026-11",
        "jurisdiction": "DE",
        "modalities": ["face", "voice", "text"],
        "granted_at": now.isoformat(),
        "expires_at": (now + timedelta(hours=1)).isoformat(),
        **fields,
    }


def session_body(talk: Recording, /, **fields: Any) -> dict[str, Any]:
    return {
        "recording": str(talk.path),
        "transcript": str(talk.transcript),
        "purpose": "self_coaching",
        "jurisdiction": "DE",
        "setting": "consumer",
        **fields,
    }


def ws_refused(svc: Service, query: str, **headers: str) -> None:
    with (
        pytest.raises(InvalidStatus) as e,
        connect(f"{svc.ws_url}/v1/events{query}", additional_headers=headers, open_timeout=10),
    ):
        pass
    assert e.value.response.status_code == 403


def test_api_key_required(service: Service) -> None:
    bare = httpx.Client(base_url=service.url, timeout=30)
    credentials: list[dict[str, str]] = [
        {},
        {"authorization": "Basic dXNlcjpwYXNz"},
        {"authorization": "Bearer"},
        {"authorization": "Bearer rk_" + "A" * 43},
        {"authorization": "Bearer not-a-key"},
        {"authorization": f"bearer {service.key}x"},
        {"authorization": service.key},
    ]
    for method, path, body in PROTECTED:
        for headers in credentials:
            r = bare.request(method, path, json=body, headers=headers)
            error_of(r, 401, "unauthorized")
            assert r.headers["www-authenticate"] == "Bearer", (method, path)
    # The scheme is case-insensitive; a valid key is let through.
    ok = bare.get("/v1/webhooks", headers={"authorization": f"bearer {service.key}"})
    assert ok.status_code == 200
    # Public endpoints need no key.
    for path in ("/healthz", "/.well-known/rapport-keys.json", "/v1/purposes"):
        assert bare.get(path).status_code == 200, path


def test_unknown_routes_methods_and_ids(service: Service) -> None:
    error_of(service.http.get("/v1/nothing-here"), 404, "not_found")
    error_of(service.http.put("/v1/sessions"), 405, "method_not_allowed")
    error_of(service.http.patch("/v1/consents/log"), 405, "method_not_allowed")
    for method, path, body in PROTECTED:
        if "_x" not in path:
            continue
        r = service.http.request(method, path, json=body)
        error = error_of(r, 404, "not_found")
        assert "_x" in error["message"], (path, error)
    r = service.http.post(
        f"/v1/webhooks/ep_{uuid.uuid4().hex[:24]}/dead-letters/replay", json={"ids": ["msg_x"]}
    )
    error_of(r, 404, "not_found")
    error_of(service.http.post("/v1/consents", json=consent_body(UNKNOWN)), 404, "not_found")


def test_bodies_that_do_not_parse_or_fit(service: Service, short_talk: Recording) -> None:
    posts = [
        "/v1/consents",
        "/v1/sessions",
        "/v1/webhooks",
        "/v1/webhooks/ep_x/dead-letters/replay",
    ]
    raw: list[tuple[bytes, str | None]] = [
        (b"{not json", "application/json"),
        (b'{"purpose": "research",', "application/json"),
        (b"\xff\xfe\x00", "application/json"),
        (b"[]", "application/json"),
        (b'"a string"', "application/json"),
        (b"42", "application/json"),
        (b"null", "application/json"),
        (b"", "application/json"),
        (b'{"a": 1}', "text/plain"),
        (b"a=1&b=2", "application/x-www-form-urlencoded"),
    ]
    for path in posts:
        for content, ctype in raw:
            headers = {"content-type": ctype} if ctype else {}
            r = service.http.post(path, content=content, headers=headers)
            error_of(r, (400, 422))
    # Wrong types, missing fields, extra fields: one field at a time.
    session = service.session(short_talk)
    good_consent = consent_body(session["id"])
    good_session = session_body(short_talk)
    cases: list[tuple[str, dict[str, Any]]] = []
    for field in good_consent:
        cases.append(("/v1/consents", {k: v for k, v in good_consent.items() if k != field}))
    for field, value in [
        ("user_id", 7),
        ("user_id", ""),
        ("user_id", "a\nb"),
        ("user_id", "x" * 201),
        ("session_id", ["x"]),
        ("purpose", None),
        ("purpose_text", ""),
        ("notice_version", {"v": 1}),
        ("jurisdiction", 49),
        ("modalities", "face"),
        ("modalities", [1]),
        ("granted_at", "yesterday"),
        ("granted_at", 1.5e20),
        ("expires_at", True),
        ("extra", "field"),
    ]:
        cases.append(("/v1/consents", {**good_consent, field: value}))
    for field in ("purpose", "jurisdiction"):
        cases.append(("/v1/sessions", {k: v for k, v in good_session.items() if k != field}))
    for field, value in [
        ("recording", 5),
        ("room", ""),
        ("purpose", ""),
        ("jurisdiction", []),
        ("setting", 3),
        ("reporting", "everyone"),
        ("speed", "fast"),
        ("speed", -1),
        ("speed", 17),
        ("bias_audit", "2026-13-01"),
        ("bias_audit", "last year"),
        ("participant", ""),
        ("extra", 1),
    ]:
        cases.append(("/v1/sessions", {**good_session, field: value}))
    cases += [
        ("/v1/webhooks", {}),
        ("/v1/webhooks", {"url": ""}),
        ("/v1/webhooks", {"url": 5}),
        ("/v1/webhooks", {"url": "http://127.0.0.1:9/h", "event_types": "session.summary"}),
        ("/v1/webhooks", {"url": "http://127.0.0.1:9/h", "event_types": [1]}),
        ("/v1/webhooks", {"url": "http://127.0.0.1:9/h", "description": "x" * 501}),
        ("/v1/webhooks", {"url": "http://127.0.0.1:9/h", "secret": "mine"}),
        ("/v1/webhooks/ep_x/dead-letters/replay", {"ids": "msg_1"}),
        ("/v1/webhooks/ep_x/dead-letters/replay", {"ids": [1, 2]}),
        ("/v1/webhooks/ep_x/dead-letters/replay", {"all": True}),
    ]
    for path, body in cases:
        error = error_of(service.http.post(path, json=body), 422, "invalid_request")
        assert error["fields"], (path, body, error)
    # Query parameters are checked the same way.
    for params in ({"after": "x"}, {"after": -2}, {"limit": 0}, {"limit": 10_001}):
        error_of(service.http.get("/v1/consents/log", params=params), 422, "invalid_request")
    for params in ({"after": -2}, {"limit": 0}, {"limit": 1001}):
        error_of(service.http.get("/v1/consents", params=params), 422, "invalid_request")


def test_consent_fields(service: Service, short_talk: Recording) -> None:
    sid = service.session(short_talk)["id"]
    now = datetime.now(UTC)
    iso = datetime.isoformat
    cases: list[tuple[dict[str, Any], int, str, str]] = [
        # (fields, status, code, a word of the message)
        (
            {"granted_at": iso(now), "expires_at": iso(now - timedelta(seconds=1))},
            422,
            "invalid_request",
            "expires_at",
        ),
        ({"granted_at": iso(now), "expires_at": iso(now)}, 422, "invalid_request", "expires_at"),
        (
            {
                "granted_at": iso(now - timedelta(days=60)),
                "expires_at": iso(now - timedelta(days=30)),
            },
            422,
            "invalid_request",
            "past",
        ),
        ({"granted_at": "2026-11-01T10:00:00"}, 422, "invalid_request", "timezone"),
        ({"expires_at": "2099-11-01T10:00:00"}, 422, "invalid_request", "timezone"),
        ({"modalities": ["face", "face"]}, 422, "invalid_request", "repeat"),
        ({"modalities": ["voice", "text", "voice"]}, 422, "invalid_request", "repeat"),
        ({"modalities": ["face", "smell"]}, 422, "invalid_request", "modalities"),
        ({"modalities": []}, 422, "invalid_request", "modalities"),
        ({"modalities": ["face", "voice", "text", "face"]}, 422, "invalid_request", "modalities"),
        ({"jurisdiction": "Germany"}, 422, "invalid_request", "ISO 3166"),
        ({"jurisdiction": "D1"}, 422, "invalid_request", "ISO 3166"),
        ({"jurisdiction": "DE-"}, 422, "invalid_request", "ISO 3166"),
        ({"jurisdiction": "US-NY-NYC-X"}, 422, "invalid_request", "ISO 3166"),
        ({"purpose": "mind_reading"}, 422, "invalid_request", "mind_reading"),
        ({"purpose": "research"}, 422, "purpose_mismatch", "self_coaching"),
        ({"session_id": UNKNOWN}, 404, "not_found", UNKNOWN),
    ]
    for fields, status, code, word in cases:
        r = service.http.post("/v1/consents", json=consent_body(sid, **fields))
        error = error_of(r, status, code)
        assert word.lower() in error["message"].lower(), (fields, error)
    # Nothing was recorded by any of them.
    assert service.http.get("/v1/consents", params={"session_id": sid}).json() == []
    assert service.http.get("/v1/consents/log").json()["entries"] == []
    # Lower-case jurisdictions are normalised, not refused.
    ok = service.http.post("/v1/consents", json=consent_body(sid, jurisdiction="de"))
    assert ok.status_code == 201 and ok.json()["record"]["jurisdiction"] == "DE"

    # A session that has ended takes no consents.
    ended = service.session(short_talk)["id"]
    assert service.http.delete(f"/v1/sessions/{ended}").json()["status"] == "ended"
    r = service.http.post("/v1/consents", json=consent_body(ended))
    error_of(r, 409, "session_ended")
    r = service.http.post(f"/v1/sessions/{ended}/start")
    error_of(r, 409, "already_started")


def test_session_fields(service: Service, short_talk: Recording, media_dir: Path) -> None:
    junk = media_dir / f"junk-{uuid.uuid4().hex}.mp4"
    junk.write_bytes(os.urandom(64 * 1024))
    junk_vtt = media_dir / f"junk-{uuid.uuid4().hex}.vtt"
    junk_vtt.write_bytes(os.urandom(4096))
    empty = media_dir / f"empty-{uuid.uuid4().hex}.mp4"
    empty.write_bytes(b"")
    room = {"room": "standup", "purpose": "research", "jurisdiction": "DE"}
    cases: list[tuple[dict[str, Any], str, str]] = [
        # (body, code, a word of the message)
        ({**room, "recording": str(short_talk.path)}, "invalid_request", "exactly one"),
        ({"purpose": "research", "jurisdiction": "DE"}, "invalid_request", "exactly one"),
        ({**room, "transcript": str(short_talk.transcript)}, "invalid_request", "recordings only"),
        ({**room, "participant": "presenter"}, "invalid_request", "recordings only"),
        ({**room, "purpose": "mind_reading"}, "invalid_request", "unknown purpose"),
        ({**room, "jurisdiction": "Deutschland"}, "invalid_request", "ISO 3166"),
        ({**room, "jurisdiction": "de-by-muc-x"}, "invalid_request", "ISO 3166"),
        ({**room, "setting": "moon"}, "invalid_request", "setting"),
        (session_body(short_talk, recording="/etc/hosts"), "invalid_request", "media_roots"),
        (
            session_body(short_talk, recording=str(media_dir / ".." / "x.mp4")),
            "invalid_request",
            "media_roots",
        ),
        (session_body(short_talk, transcript="/etc/hosts"), "invalid_request", "media_roots"),
        (session_body(short_talk, recording=str(junk)), "invalid_request", "recording"),
        (session_body(short_talk, recording=str(empty)), "invalid_request", "empty"),
        (session_body(short_talk, recording=str(media_dir)), "invalid_request", "directory"),
        (
            session_body(short_talk, recording=str(media_dir / "missing.mp4")),
            "invalid_request",
            "no such file",
        ),
        (session_body(short_talk, transcript=str(junk_vtt)), "invalid_request", "transcript"),
        (
            session_body(short_talk, transcript=None, participant=None),
            "invalid_request",
            "participant",
        ),
        (
            session_body(short_talk, reporting="participant", purpose="support_quality"),
            "reporting_refused",
            "room",
        ),
    ]
    for body, code, word in cases:
        error = error_of(service.http.post("/v1/sessions", json=body), 422, code)
        assert word.lower() in error["message"].lower(), (body, error)

    # Starting: a room session never; a recording once.
    r = service.http.post("/v1/sessions", json=room)
    assert r.status_code == 201, r.text
    error_of(service.http.post(f"/v1/sessions/{r.json()['id']}/start"), 409, "not_a_recording")
    sid = service.session(short_talk)["id"]
    assert service.http.post(f"/v1/sessions/{sid}/start").status_code == 200
    error_of(service.http.post(f"/v1/sessions/{sid}/start"), 409, "already_started")
    service.wait_status(sid, "ended")
    error_of(service.http.post(f"/v1/sessions/{sid}/start"), 409, "already_started")
    error_of(service.http.post("/v1/consents", json=consent_body(sid)), 409, "session_ended")


def test_webhook_urls(make_service: Any) -> None:
    service = make_service()
    ok = service.http.post("/v1/webhooks", json={"url": "http://127.0.0.1:9/hooks"})
    assert ok.status_code == 201, ok.text  # tests allow 127.0.0.0/8
    assert service.http.delete(f"/v1/webhooks/{ok.json()['id']}").status_code == 204
    loose: list[tuple[str, str]] = [
        ("ftp://127.0.0.1/hooks", "scheme"),
        ("file:///etc/passwd", "scheme"),
        ("127.0.0.1:9/hooks", "scheme"),
        ("http://user:secret@127.0.0.1:9/hooks", "credentials"),
        ("http://user@127.0.0.1:9/hooks", "credentials"),
        ("http://127.0.0.1:99999/hooks", "port"),
        ("http://127.0.0.1 :9/hooks", "whitespace"),
        ("http:///hooks", "host"),
        ("http://[::1/hooks", "parse"),
    ]
    for url, word in loose:
        r = service.http.post("/v1/webhooks", json={"url": url})
        error = error_of(r, 422, "invalid_request")
        assert word in error["message"], (url, error)
    r = service.http.post(
        "/v1/webhooks", json={"url": "http://127.0.0.1:9/h", "event_types": ["session.nope"]}
    )
    assert "session.nope" in error_of(r, 422, "invalid_request")["message"]
    assert service.http.get("/v1/webhooks").json() == []

    strict = make_service({"webhooks": {"allowed_networks": []}}, name="strict")
    for url in [
        "http://127.0.0.1:9/hooks",
        "http://127.1.2.3/hooks",
        "http://10.0.0.1/hooks",
        "http://192.168.1.1/hooks",
        "http://172.16.0.1/hooks",
        "http://169.254.169.254/latest/meta-data/",
        "http://0.0.0.0/hooks",
        "http://[::1]/hooks",
        "http://[::ffff:127.0.0.1]/hooks",
        "http://[fd00::1]/hooks",
        "https://100.64.0.1/hooks",
        "ftp://10.0.0.1/hooks",
        "http://user:secret@10.0.0.1/hooks",
    ]:
        r = strict.http.post("/v1/webhooks", json={"url": url})
        error_of(r, 422, "invalid_request")
    assert strict.http.get("/v1/webhooks").json() == []


def test_websocket_handshakes(service: Service, short_talk: Recording) -> None:
    mine = service.session(short_talk)["id"]
    other = service.session(short_talk)["id"]
    r = service.http.post(f"/v1/sessions/{mine}/tokens")
    assert r.status_code == 201, r.text
    token = r.json()["token"]
    assert r.json()["session_id"] == mine
    key = {"authorization": f"Bearer {service.key}"}
    port = service.url.rsplit(":", 1)[1]

    ws_refused(service, f"?session={mine}")
    ws_refused(service, f"?session={mine}&token=not-a-token")
    ws_refused(service, f"?session={mine}&token={token}x")
    ws_refused(service, f"?session={other}&token={token}")
    ws_refused(service, f"?session={mine}", authorization="Bearer rk_wrong")
    ws_refused(service, f"?session={mine}", authorization=f"Bearer {token}x")
    ws_refused(service, f"?session={mine}&token={token}", origin="https://evil.example")
    ws_refused(service, f"?session={mine}", origin="http://127.0.0.1", **key)
    ws_refused(service, f"?session={mine}", origin=f"http://evil.example:{port}", **key)
    ws_refused(service, f"?session={UNKNOWN}", **key)
    ws_refused(service, "", **key)
    ws_refused(service, f"?session={mine}&after=x", **key)
    ws_refused(service, f"?session={mine}&after=-2", **key)

    # A page this server served (the dashboard) may connect: same origin.
    with connect(
        f"{service.ws_url}/v1/events?session={mine}&token={token}",
        additional_headers={"origin": service.url},
        open_timeout=10,
    ) as ws:
        assert json.loads(ws.recv(timeout=10))["session_id"] == mine

    # The dashboard token reads its own session (live: a heartbeat comes while it is idle).
    for query, headers in [(f"&token={token}", {}), ("", {"authorization": f"Bearer {token}"})]:
        with connect(
            f"{service.ws_url}/v1/events?session={mine}{query}", additional_headers=headers
        ) as ws:
            m = json.loads(ws.recv(timeout=10))
            assert m["type"] == "heartbeat" and m["session_id"] == mine
    error_of(service.http.post(f"/v1/sessions/{UNKNOWN}/tokens"), 404, "not_found")


# -- edge inputs that once gave a 500 (or a multi-line message) ---------------------------------
# They share one server (a 500 may drop the connection, so each request gets its own).


@pytest.fixture(scope="module")
def shared(
    tmp_path_factory: pytest.TempPathFactory, models_dir: Path, media_dir: Path
) -> Iterator[Service]:
    svc = Service(tmp_path_factory.mktemp("bugs"), models_dir, media_dir, {})
    svc.start()
    yield svc
    svc.stop()


def _bug_request(svc: Service, talk: Recording, media: Path, case: str) -> httpx.Response:
    send = functools.partial(svc.http.request, headers={"connection": "close"})
    if case == "purpose-case-with-participant-reporting":
        body = session_body(talk, purpose="Self_Coaching", reporting="participant")
        return send("POST", "/v1/sessions", json=body)
    if case == "nul-in-recording":
        return send("POST", "/v1/sessions", json=session_body(talk, recording=f"{media}/a\0.mp4"))
    if case == "nul-in-transcript":
        return send("POST", "/v1/sessions", json=session_body(talk, transcript=f"{media}/a\0.vtt"))
    if case == "newline-in-recording-path":
        return send("POST", "/v1/sessions", json=session_body(talk, recording="/x/a\nb.mp4"))
    if case == "consent-log-after-overflow":
        return send("GET", "/v1/consents/log", params={"after": 2**63})
    sid = svc.session(talk)["id"]
    if case == "consent-expires-in-year-9999-west-of-utc":
        body = consent_body(sid, expires_at="9999-12-31T23:59:59-01:00")
    else:
        assert case == "consent-granted-in-year-1-east-of-utc"
        body = consent_body(sid, granted_at="0001-01-01T00:00:00+01:00")
    return send("POST", "/v1/consents", json=body)


BUGS = [
    "purpose-case-with-participant-reporting",
    "nul-in-recording",
    "nul-in-transcript",
    "newline-in-recording-path",
    "consent-log-after-overflow",
    "consent-expires-in-year-9999-west-of-utc",
    "consent-granted-in-year-1-east-of-utc",
]


@pytest.mark.parametrize("case", BUGS)
def test_edge_inputs_never_500(
    shared: Service, short_talk: Recording, media_dir: Path, case: str
) -> None:
    r = _bug_request(shared, short_talk, media_dir, case)
    assert r.status_code < 500, f"{case}: {r.status_code} {r.text}"
    if r.status_code >= 400:
        error_of(r, r.status_code)
    elif case.startswith("purpose-case"):
        assert r.json()["purpose"] == "self_coaching"


def test_websocket_after_out_of_range(shared: Service, short_talk: Recording) -> None:
    """Refused at the handshake, or served: never dropped without a close frame."""
    sid = shared.session(short_talk)["id"]
    url = f"{shared.ws_url}/v1/events?session={sid}&after={2**63}"
    try:
        with connect(url, additional_headers={"authorization": f"Bearer {shared.key}"}) as ws:
            try:
                first = json.loads(ws.recv(timeout=10))
            except ConnectionClosed as e:
                raise AssertionError(f"dropped after the handshake: {e!r}") from None
            assert first["type"] == "heartbeat"
    except InvalidStatus as e:
        assert e.response.status_code == 403
