"""Projects and scopes through a real server: no API key reads or changes another project's
sessions, consents, consent log, webhook endpoints or events, on any route (the table below must
name every operation of the OpenAPI document, so a new route cannot escape the test), and each
scope does what it says and no more."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from typing import Any

import httpx
import pytest
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect

from rapport.consent.records import LogEntry, public_keys_from_jwks, verify_log
from rapport.samples import Recording
from tests.fakes.receiver import webhook_receiver
from tests.integration.service.conftest import Service

USER = "ada"

# What another project's admin key gets on each operation, aimed at our resources:
# "hidden": 404, as if they did not exist; "own": it acts on its own project only (checked after).
ISOLATION: dict[tuple[str, str], str] = {
    ("get", "/v1/sessions"): "own",
    ("get", "/v1/sessions/{session_id}"): "hidden",
    ("get", "/v1/sessions/{session_id}/report"): "hidden",
    ("post", "/v1/sessions/{session_id}/start"): "hidden",
    ("delete", "/v1/sessions/{session_id}"): "hidden",
    ("post", "/v1/sessions/{session_id}/tokens"): "hidden",
    ("post", "/v1/sessions"): "own",
    ("post", "/v1/consents"): "hidden",
    ("get", "/v1/consents"): "own",
    ("get", "/v1/consents/log"): "own",
    ("get", "/v1/consents/{consent_id}"): "hidden",
    ("post", "/v1/consents/{consent_id}/revoke"): "hidden",
    ("post", "/v1/webhooks"): "own",
    ("get", "/v1/webhooks"): "own",
    ("get", "/v1/webhooks/{endpoint_id}"): "hidden",
    ("delete", "/v1/webhooks/{endpoint_id}"): "hidden",
    ("post", "/v1/webhooks/{endpoint_id}/rotate-secret"): "hidden",
    ("post", "/v1/webhooks/{endpoint_id}/enable"): "hidden",
    ("get", "/v1/webhooks/{endpoint_id}/dead-letters"): "hidden",
    ("post", "/v1/webhooks/{endpoint_id}/dead-letters/replay"): "hidden",
    ("delete", "/v1/subjects/{user_id}"): "own",
    ("post", "/v1/keys"): "own",
    ("get", "/v1/keys"): "own",
    ("delete", "/v1/keys/{key_id}"): "hidden",
    # Not a project's data: the same for everyone (or LiveKit's own authentication).
    ("get", "/v1/purposes"): "public",
    ("get", "/.well-known/rapport-keys.json"): "public",
    ("post", "/v1/livekit/webhook"): "public",
    ("get", "/healthz"): "public",
    ("get", "/readyz"): "public",
    ("get", "/metrics"): "public",
}


def _operations(svc: Service) -> set[tuple[str, str]]:
    doc = svc.http.get("/openapi.json").json()
    return {
        (method, path)
        for path, ops in doc["paths"].items()
        for method in ops
        if method in ("get", "post", "put", "patch", "delete")
    }


def _snapshot(svc: Service) -> dict[str, list[tuple[Any, ...]]]:
    """Every stored row of the default project (read from the server's SQLite file)."""
    db = sqlite3.connect(f"file:{svc.root / 'data' / 'rapport.db'}?mode=ro", uri=True)
    try:
        mine = "project = 'default'"
        return {
            table: db.execute(f"SELECT * FROM {table} WHERE {where} ORDER BY 1, 2").fetchall()
            for table, where in (
                ("sessions", mine),
                ("consents", mine),
                ("consent_log", mine),
                ("webhook_endpoints", mine),
                ("api_keys", mine),
                ("events", "session_id IN (SELECT id FROM sessions WHERE project = 'default')"),
            )
        }
    finally:
        db.close()


def _body(method: str, path: str, svc: Service, ours: dict[str, Any]) -> dict[str, Any] | None:
    """A valid body for the operation, aimed at our resources where it names one."""
    if (method, path) == ("post", "/v1/consents"):
        consent = ours["consent"]["record"]
        return {
            k: consent[k]
            for k in (
                "user_id",
                "session_id",
                "purpose",
                "purpose_text",
                "notice_version",
                "jurisdiction",
                "modalities",
                "granted_at",
                "expires_at",
            )
        }
    if (method, path) == ("post", "/v1/sessions"):
        return {"room": "their-room", "purpose": "self_coaching", "jurisdiction": "DE"}
    if (method, path) == ("post", "/v1/webhooks"):
        return {"url": ours["receiver"]}
    if path.endswith("/replay"):
        return {}
    if (method, path) == ("post", "/v1/keys"):
        return {"name": "theirs", "scope": "admin"}
    return None


@pytest.fixture
def two_projects(service: Service, short_talk: Recording) -> dict[str, Any]:
    """Ours (the service's default-project admin key) with a session, a consent and a webhook
    endpoint; theirs: admin, backend and read keys of project "rival"."""
    session = service.session(short_talk)
    consent = service.consent(session["id"], USER)
    with webhook_receiver() as rx:
        ep = service.http.post("/v1/webhooks", json={"url": rx.url}).json()
    theirs = {scope: service.client(service.new_key("rival", scope)[1]) for scope in SCOPES}
    return {
        "session": session,
        "consent": consent,
        "endpoint": ep,
        "receiver": ep["url"],
        "theirs": theirs,
    }


SCOPES = ("read", "backend", "admin")
CLI = (sys.executable, "-m", "rapport.cli", "--config")


def test_no_route_reaches_another_projects_data(
    service: Service, two_projects: dict[str, Any]
) -> None:
    ours = two_projects
    ops = _operations(service)
    assert ops <= set(ISOLATION), (
        f"routes without an isolation rule: {sorted(ops - set(ISOLATION))}"
    )
    ids = {
        "session_id": ours["session"]["id"],
        "consent_id": ours["consent"]["id"],
        "endpoint_id": ours["endpoint"]["id"],
        "user_id": USER,
        "key_id": service.http.get("/v1/keys").json()[0]["id"],
    }
    rival: httpx.Client = ours["theirs"]["admin"]
    before = _snapshot(service)
    for method, path in sorted(ops):
        rule = ISOLATION[(method, path)]
        if rule == "public":
            continue
        url = path.format(**ids)
        body = _body(method, path, service, ours)
        params = (
            {"session_id": ids["session_id"]} if (method, path) == ("get", "/v1/consents") else None
        )
        r = rival.request(method.upper(), url, json=body, params=params)
        if rule == "hidden":
            assert r.status_code == 404, f"{method} {path}: {r.status_code} {r.text}"
            assert r.json()["error"]["code"] == "not_found"
        else:
            assert r.status_code < 300, f"{method} {path}: {r.status_code} {r.text}"
            text = r.text
            for ident in (ids["session_id"], ids["consent_id"], ids["endpoint_id"], ids["key_id"]):
                assert ident not in text, f"{method} {path} shows our {ident}"

    assert _snapshot(service) == before, "another project's calls changed our rows"
    # Ours is as it was: the session still created, the consent active and unerased, the
    # endpoint registered, and our log whole and verifiable.
    assert service.http.get(f"/v1/sessions/{ids['session_id']}").json()["status"] == "created"
    consent = service.http.get(f"/v1/consents/{ids['consent_id']}").json()
    assert consent["status"] == "active" and consent["record"]["user_id"] == USER
    assert service.http.get(f"/v1/webhooks/{ids['endpoint_id']}").status_code == 200
    log = service.http.get("/v1/consents/log").json()
    entries = [LogEntry.from_dict(e) for e in log["entries"]]
    assert [e.kind for e in entries] == ["grant"]
    verify_log(entries, public_keys_from_jwks({"keys": log["keys"]}))
    # Theirs is a chain of its own: the rival's erasure above wrote only to it.
    theirs = rival.get("/v1/consents/log").json()["entries"]
    assert [e["kind"] for e in theirs] == ["erasure"] or theirs == []
    assert all(e["seq"] < 2 for e in theirs)


def test_events_reach_only_their_own_project(
    service: Service, short_talk: Recording, two_projects: dict[str, Any]
) -> None:
    rival: httpx.Client = two_projects["theirs"]["admin"]
    with webhook_receiver() as mine, webhook_receiver() as theirs:
        assert service.http.post("/v1/webhooks", json={"url": mine.url}).status_code == 201
        assert rival.post("/v1/webhooks", json={"url": theirs.url}).status_code == 201
        session = service.session(short_talk)
        service.consent(session["id"], "presenter")
        assert service.http.post(f"/v1/sessions/{session['id']}/start").status_code == 200
        service.wait_status(session["id"], "ended")
        got = mine.wait_for(lambda rs: any(b"session.summary" in r.body for r in rs), timeout=30)
        assert {json.loads(r.body)["session_id"] for r in got} == {session["id"]}
        # Every one of our events has been delivered to us; none went to them.
        assert theirs.attempts == []
    # Their keys, of any scope, cannot open our session's events.
    for scope in SCOPES:
        client = two_projects["theirs"][scope]
        key = client.headers["authorization"]
        with pytest.raises(InvalidStatus) as refused:
            connect(
                f"{service.ws_url}/v1/events?session={session['id']}",
                additional_headers={"authorization": key},
            )
        assert refused.value.response.status_code == 403
    # Nor can a token they mint for a session of theirs.
    own = rival.post(
        "/v1/sessions", json={"room": "r2", "purpose": "self_coaching", "jurisdiction": "DE"}
    )
    token = rival.post(f"/v1/sessions/{own.json()['id']}/tokens").json()["token"]
    with pytest.raises(InvalidStatus):
        connect(f"{service.ws_url}/v1/events?session={session['id']}&token={token}")


def test_each_scope_does_what_it_says(service: Service, two_projects: dict[str, Any]) -> None:
    read, backend, admin = (two_projects["theirs"][s] for s in SCOPES)
    room = {"room": "scoped", "purpose": "self_coaching", "jurisdiction": "DE"}
    # read: GETs only
    assert read.get("/v1/webhooks").status_code == 200
    assert read.get("/v1/consents/log").status_code == 200
    refused = read.post("/v1/sessions", json=room)
    assert refused.status_code == 403 and refused.json()["error"]["code"] == "forbidden"
    assert read.delete(f"/v1/subjects/{USER}").status_code == 403
    # backend: sessions, consents, tokens, erasure; not webhook endpoints
    made = backend.post("/v1/sessions", json=room)
    assert made.status_code == 201, made.text
    assert backend.post(f"/v1/sessions/{made.json()['id']}/tokens").status_code == 201
    assert read.get(f"/v1/sessions/{made.json()['id']}").status_code == 200
    assert read.post(f"/v1/sessions/{made.json()['id']}/tokens").status_code == 403
    hook = {"url": two_projects["receiver"]}
    assert backend.post("/v1/webhooks", json=hook).status_code == 403
    assert backend.post("/v1/keys", json={"name": "x"}).status_code == 403
    # admin: webhook endpoints and keys too, in its own project
    assert admin.post("/v1/webhooks", json=hook).status_code == 201
    made_key = admin.post("/v1/keys", json={"name": "ci", "scope": "read"})
    assert made_key.status_code == 201, made_key.text
    new = made_key.json()
    assert (new["project"], new["scope"]) == ("rival", "read") and new["key"].startswith("rk_")
    ci = service.client(new["key"])
    assert ci.get("/v1/webhooks").status_code == 200
    listed = admin.get("/v1/keys").json()
    assert {k["project"] for k in listed} == {"rival"} and all(k["key"] is None for k in listed)
    assert admin.delete(f"/v1/keys/{new['id']}").json()["revoked_at"] is not None
    assert ci.get("/v1/webhooks").status_code == 401


def test_a_room_belongs_to_one_project(service: Service, two_projects: dict[str, Any]) -> None:
    room = {"room": "board-meeting", "purpose": "self_coaching", "jurisdiction": "DE"}
    assert service.http.post("/v1/sessions", json=room).status_code == 201
    r = two_projects["theirs"]["backend"].post("/v1/sessions", json=room)
    assert r.status_code == 409 and r.json()["error"]["code"] == "room_in_use"


def test_keys_cli_refuses_a_bad_project_in_one_line(service: Service) -> None:
    p = subprocess.run(
        [*CLI, str(service.config), "keys", "create", "x", "--project", "Not A Name"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert p.returncode != 0
    assert p.stderr.count("\n") == 1 and "project" in p.stderr, p.stderr
    listed = service._cli("keys", "list")
    assert "Not A Name" not in listed
