"""Background loops survive a real database outage: with PostgreSQL stopped under a running
service, the webhook loop fails, /healthz says so (degraded, backing off, the error's type) and
the log names the loop; once PostgreSQL is back the loop restarts and webhooks are delivered."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from rapport import __version__
from rapport.samples import Recording
from tests.fakes.postgres import PostgresServer, postgres_cluster
from tests.fakes.receiver import webhook_receiver
from tests.fakes.wait import wait_until
from tests.integration.service.conftest import Service, postgres_bin

RUNNING = {"state": "running", "restarts": 0, "last_error": None}


@pytest.fixture
def postgres() -> Iterator[PostgresServer]:
    """A server of this test's own: stopping the session's shared one would break other tests."""
    with postgres_cluster(postgres_bin()) as server:
        yield server


def test_the_webhook_loop_recovers_from_a_database_outage(
    make_service: Any, postgres: PostgresServer, short_talk: Recording
) -> None:
    svc: Service = make_service({"service": {"database_url": postgres.url}})
    assert svc.health() == {
        "status": "ok",
        "version": __version__,
        "loops": {"webhooks": RUNNING, "keys": RUNNING, "retention": RUNNING},
    }
    with webhook_receiver() as rx:
        assert svc.http.post("/v1/webhooks", json={"url": rx.url}).status_code == 201

        postgres.stop()  # the outbox polls every 0.1 s: its next claim fails

        def degraded() -> dict[str, Any] | None:
            health = svc.health()
            return health if health["status"] == "degraded" else None

        down = wait_until(degraded, 30, "/healthz to report the webhook loop failing")
        webhooks = down["loops"]["webhooks"]
        assert webhooks["state"] == "backing_off"
        error = webhooks["last_error"]
        assert isinstance(error["type"], str) and error["type"] and error["at"]
        assert down["loops"]["retention"] == RUNNING  # asleep between purges: untouched

        postgres.start()
        s = svc.session(short_talk)
        svc.consent(s["id"], "presenter")
        assert svc.http.post(f"/v1/sessions/{s['id']}/start").status_code == 200
        svc.wait_status(s["id"], "ended")
        n = len(svc.events(s["id"]))
        got = rx.wait_for(lambda rs: len(rs) >= n)
        assert sorted(json.loads(g.body)["seq"] for g in got) == list(range(n))

    up = svc.health()
    assert up["status"] == "ok"
    webhooks = up["loops"]["webhooks"]
    assert webhooks["state"] == "running" and webhooks["restarts"] >= 1
    assert webhooks["last_error"]["type"]  # the latest failure's, kept after the recovery
    # The failure was logged with the loop's name as a field, and its traceback.
    log = (svc.root / "serve.log").read_text()
    failed = [line for line in log.splitlines() if "background loop failed" in line]
    assert failed and all("loop=webhooks" in line for line in failed), log[-2000:]
    assert "Traceback (most recent call last):" in log
