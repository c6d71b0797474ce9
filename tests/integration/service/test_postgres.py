"""The same service on PostgreSQL (a real server): migrations, the consent chain, a session whose
events reach the WebSocket and a webhook, revocation, erasure and delivery after kill -9."""

from __future__ import annotations

import json
import time
from typing import Any

from rapport.consent.records import LogEntry, public_keys_from_jwks, verify_log
from rapport.events.webhook_signing import verify
from rapport.samples import Recording
from tests.fakes.receiver import webhook_receiver
from tests.integration.service.conftest import Service


def test_the_service_on_postgres(
    make_service: Any, postgres_url: str, short_talk: Recording
) -> None:
    svc: Service = make_service({"service": {"database_url": postgres_url}})
    with webhook_receiver() as rx:
        rx.delay_s = 0.2
        ep = svc.http.post("/v1/webhooks", json={"url": rx.url}).json()
        s = svc.session(short_talk)
        consent = svc.consent(s["id"], "presenter")
        svc.consent(s["id"], "bystander")
        svc.http.post(f"/v1/sessions/{s['id']}/start")
        done = svc.wait_status(s["id"], "ended")
        assert done["counts"]["admitted"]["face"] > 0
        events = svc.events(s["id"])
        assert [e["seq"] for e in events] == list(range(len(events)))
        svc.kill()  # deliveries in flight die with it; the outbox in Postgres keeps them
        svc.start()
        got = rx.wait_for(
            lambda rs: {json.loads(g.body)["seq"] for g in rs} == set(range(len(events)))
        )
        for g in got:
            verify(ep["secret"], g.headers, g.body, now=time.time())
    revoked = svc.http.post(f"/v1/consents/{consent['id']}/revoke").json()
    assert revoked["status"] == "revoked"
    erased = svc.http.delete("/v1/subjects/presenter").json()
    assert erased["consents_erased"] == 1 and erased["events_deleted"] == len(events)
    log = svc.http.get("/v1/consents/log").json()
    jwks = svc.http.get("/.well-known/rapport-keys.json").json()
    entries = [LogEntry.from_dict(e) for e in log["entries"]]
    assert [e.kind for e in entries] == ["grant", "grant", "revoke", "erasure"]
    assert verify_log(entries, public_keys_from_jwks(jwks)) == []
    assert "presenter" not in json.dumps(log) and "bystander" in json.dumps(log)
    assert not (svc.root / "data" / "rapport.db").exists()  # nothing went to SQLite
