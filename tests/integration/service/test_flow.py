"""A session on a generated recording, end to end through a real server: consent, processing,
events in order on the WebSocket and on a signed webhook."""

from __future__ import annotations

import json
import threading
import time
from typing import Any

from websockets.sync.client import connect

from rapport.events.webhook_signing import verify
from rapport.samples import Recording
from tests.fakes.receiver import webhook_receiver
from tests.integration.service.conftest import Service


def collect(svc: Service, session_id: str, query: str = "", **kw: Any) -> dict[str, Any]:
    """Read the session's WebSocket in a thread until the server closes it; `connected` is set
    once the server has accepted it (and subscribed it to live events)."""
    box: dict[str, Any] = {"messages": [], "close": None, "connected": threading.Event()}

    def run() -> None:
        with connect(
            f"{svc.ws_url}/v1/events?session={session_id}{query}",
            additional_headers={"authorization": f"Bearer {svc.key}"},
            **kw,
        ) as ws:
            box["connected"].set()
            try:
                for m in ws:
                    box["messages"].append((time.time(), json.loads(m)))
            finally:
                box["close"] = (ws.close_code, ws.close_reason)

    box["thread"] = threading.Thread(target=run, daemon=True)
    box["thread"].start()
    return box


def test_events_arrive_in_order_on_websocket_and_signed_webhook(
    service: Service, short_talk: Recording
) -> None:
    with webhook_receiver() as receiver:
        r = service.http.post("/v1/webhooks", json={"url": receiver.url})
        assert r.status_code == 201, r.text
        secret = r.json()["secret"]
        session = service.session(short_talk)
        service.consent(session["id"], "presenter")
        ws = collect(service, session["id"])
        assert ws["connected"].wait(10), "the WebSocket did not connect"
        assert service.http.post(f"/v1/sessions/{session['id']}/start").status_code == 200
        done = service.wait_status(session["id"], "ended")
        ws["thread"].join(30)
        events = [m for _, m in ws["messages"] if m["type"] not in ("heartbeat",)]
        assert ws["close"][0] == 1000
        assert [e["seq"] for e in events] == list(range(len(events)))
        assert events[0]["type"] == "session.started"
        assert events[-1]["type"] == "session.summary"
        assert {e["type"] for e in events} >= {"engagement.window", "turns.window"}
        for e in events:
            assert e["models"]["face"] and "inner state" in e["notice"]
        got = receiver.wait_for(lambda rs: len(rs) >= len(events))
        hooked = sorted((json.loads(g.body) for g in got), key=lambda e: e["seq"])
        assert [e["id"] for e in hooked] == [e["id"] for e in events]
        for g in got:
            verify(secret, g.headers, g.body, now=time.time())
        assert done["counts"]["admitted"]["face"] > 0
        assert done["counts"]["dropped"] == {}


def test_api_keys_are_listed_without_the_key_and_revoked_at_once(service: Service) -> None:
    assert service.http.get("/v1/webhooks").status_code == 200
    listing = service._cli("keys", "list")
    assert "\ttests\t" in listing and service.key not in listing
    key_id = listing.split("\t")[0]
    assert service._cli("keys", "revoke", key_id).strip() == f"revoked {key_id}"
    r = service.http.get("/v1/webhooks")
    assert r.status_code == 401 and r.json()["error"]["code"] == "unauthorized"
    assert "revoked" in service._cli("keys", "list")


def test_ending_a_running_session_emits_its_summary(
    service: Service, short_talk: Recording
) -> None:
    session = service.session(short_talk, speed=1.0)
    service.consent(session["id"], "presenter")
    service.http.post(f"/v1/sessions/{session['id']}/start")
    first = service.wait_event(
        session["id"], lambda e: e["type"] == "engagement.window", "the first 2 s window"
    )
    assert first["media_time"] == {"start": 0.0, "end": 2.0}
    r = service.http.delete(f"/v1/sessions/{session['id']}")
    assert r.status_code == 200 and r.json()["status"] == "ended"
    events = service.events(session["id"])
    summary = events[-1]
    assert summary["type"] == "session.summary"
    assert 2.0 <= summary["data"]["duration_s"] < short_talk.duration_s
