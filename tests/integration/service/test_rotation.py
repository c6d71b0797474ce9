"""Rotation without a gap: a webhook secret (two signatures during the grace period) and the
consent-signing key (new records under the new kid; old ones still verify)."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest

from rapport.consent.records import LogEntry, public_keys_from_jwks, verify_log
from rapport.events.webhook_signing import WebhookVerificationError, verify
from rapport.samples import Recording
from tests.fakes.receiver import webhook_receiver
from tests.integration.service.conftest import Service


def _run(svc: Service, rec: Recording) -> int:
    s = svc.session(rec)
    svc.consent(s["id"], "presenter")
    svc.http.post(f"/v1/sessions/{s['id']}/start")
    svc.wait_status(s["id"], "ended")
    return len(svc.events(s["id"]))


def test_a_rotated_webhook_secret_signs_beside_the_old_one(
    make_service: Any, short_talk: Recording
) -> None:
    svc: Service = make_service({"webhooks": {"rotation_grace_s": 3600}})
    with webhook_receiver() as rx:
        ep = svc.http.post("/v1/webhooks", json={"url": rx.url}).json()
        old = ep["secret"]
        r = svc.http.post(f"/v1/webhooks/{ep['id']}/rotate-secret")
        assert r.status_code == 200
        new = r.json()["secret"]
        assert new != old and new.startswith("whsec_")
        n = _run(svc, short_talk)
        got = rx.wait_for(lambda rs: len(rs) >= n)
        for g in got:
            assert len(g.headers["webhook-signature"].split()) == 2
            verify(new, g.headers, g.body, now=time.time())  # receivers may switch at once
            verify(old, g.headers, g.body, now=time.time())  # or keep the old one a while


def test_an_expired_old_secret_no_longer_signs(make_service: Any, short_talk: Recording) -> None:
    svc: Service = make_service({"webhooks": {"rotation_grace_s": 0}})
    with webhook_receiver() as rx:
        ep = svc.http.post("/v1/webhooks", json={"url": rx.url}).json()
        new = svc.http.post(f"/v1/webhooks/{ep['id']}/rotate-secret").json()["secret"]
        n = _run(svc, short_talk)
        got = rx.wait_for(lambda rs: len(rs) >= n)
        for g in got:
            verify(new, g.headers, g.body, now=time.time())
            with pytest.raises(WebhookVerificationError):
                verify(ep["secret"], g.headers, g.body, now=time.time())


def test_a_rotated_signing_key_signs_new_records_and_old_ones_still_verify(
    service: Service, short_talk: Recording
) -> None:
    s1 = service.session(short_talk)
    first = service.consent(s1["id"], "presenter")
    out = service._cli("keys", "rotate-signing")
    assert "restart" in out
    service.stop()
    service.start()
    s2 = service.session(short_talk)
    second = service.consent(s2["id"], "presenter")
    assert second["signed"]["kid"] != first["signed"]["kid"]
    jwks = service.http.get("/.well-known/rapport-keys.json").json()
    assert [k["kid"] for k in jwks["keys"]][:2] == [second["signed"]["kid"], first["signed"]["kid"]]
    log = service.http.get("/v1/consents/log").json()
    entries = [LogEntry.from_dict(e) for e in log["entries"]]
    assert verify_log(entries, public_keys_from_jwks(jwks)) == []
    assert json.dumps(log).count(first["signed"]["kid"]) >= 1
