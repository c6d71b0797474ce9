"""Operations against a real server: /metrics counts what a session did (values, not just
names), every metric is in the README, /readyz turns 503 with the reason while PostgreSQL is down
and back to 200 after, /healthz stays 200, and the JSON log option writes JSON lines."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from rapport.samples import Recording
from tests.fakes.postgres import PostgresServer, postgres_cluster
from tests.fakes.receiver import webhook_receiver
from tests.fakes.wait import wait_until
from tests.integration.service.conftest import Service, postgres_bin

README = Path(__file__).resolve().parents[3] / "README.md"

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def scrape(svc: Service) -> Samples:
    r = svc.http.get("/metrics")
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("text/plain; version=")
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(r.text)
        for s in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    """A sample's value; 0 when it was never observed (a labelled child not yet created)."""
    return samples.get((name, frozenset(labels.items())), 0.0)


def test_metrics_count_what_a_session_did(service: Service, short_talk: Recording) -> None:
    with webhook_receiver() as rx:
        rx.script = [(500, {})]  # the first POST fails, then it is retried
        assert service.http.post("/v1/webhooks", json={"url": rx.url}).status_code == 201
        before = scrape(service)
        s = service.session(short_talk)
        service.consent(s["id"], "presenter")
        assert service.http.post(f"/v1/sessions/{s['id']}/start").status_code == 200
        counts = service.wait_status(s["id"], "ended")["counts"]
        events = service.events(s["id"])
        rx.wait_for(lambda rs: len(rs) >= len(events))

        def settled() -> Samples | None:
            now = scrape(service)
            delivered = value(now, "rapport_webhook_attempts_total", outcome="delivered") - value(
                before, "rapport_webhook_attempts_total", outcome="delivered"
            )
            idle = value(now, "rapport_websocket_connections") == 0  # service.events closed
            return now if delivered >= len(events) and idle else None

        after = wait_until(settled, 30, "the webhook deliveries and WebSocket close to be counted")

    def delta(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    admitted = counts["admitted"]
    assert admitted["face"] > 0 and admitted["voice"] > 0 and admitted["text"] == 2
    for modality in ("face", "voice", "text"):
        assert delta("rapport_items_admitted_total", modality=modality) == admitted[modality]
    assert counts["dropped"] == {}
    dropped = [k for k in after if k[0] == "rapport_items_dropped_total"]
    assert all(after[k] == before.get(k, 0.0) for k in dropped), "nothing was dropped"
    # Every admitted frame went through face detection, every audio chunk through the VAD,
    # every utterance through the text head: one timed call each.
    heads = {"face_detection": "face", "voice_activity": "voice", "text": "text"}
    for head, modality in heads.items():
        assert delta("rapport_inference_seconds_count", head=head) == admitted[modality], head
        assert delta("rapport_inference_seconds_sum", head=head) > 0, head
        le_inf = delta("rapport_inference_seconds_bucket", head=head, le="+Inf")
        assert le_inf == admitted[modality], head
    # One face in every frame: classified whenever it was found, never more often than frames.
    assert 0 < delta("rapport_inference_seconds_count", head="face_expression") <= admitted["face"]

    windows = [e for e in events if e["type"] == "engagement.window"]
    assert len(windows) >= 3  # 8 s in 2 s windows
    assert delta("rapport_windows_emitted_total") == len(windows)
    assert delta("rapport_event_lag_seconds_count", stage="published") == len(events)
    assert delta("rapport_event_lag_seconds_count", stage="webhook") == len(events)
    assert delta("rapport_webhook_attempts_total", outcome="delivered") == len(events)
    assert delta("rapport_webhook_attempts_total", outcome="http_error") == 1
    assert delta("rapport_webhook_dead_letters_total", reason="retries_exhausted") == 0
    assert delta("rapport_consent_writes_total", kind="grant") == 1
    assert value(after, "rapport_live_queue_items") == 0  # a recording has no live queue
    # Every process-wide metric of rapport is documented (README: Metrics).
    readme = README.read_text(encoding="utf-8")
    names = {re.sub(r"_(total|count|sum|bucket|created)$", "", n) for n, _ in after}
    for name in sorted(n for n in names if n.startswith("rapport_")):
        assert f"`{name}" in readme, f"{name} is not in the README's Metrics section"


def test_ready_and_healthy_and_metrics_can_be_turned_off(make_service: Any) -> None:
    svc: Service = make_service({"service": {"metrics": False}})
    r = svc.http.get("/readyz")
    assert r.status_code == 200, r.text
    assert r.json() == {
        "status": "ready",
        "checks": {"database": "ok", "migrations": "ok", "loops": "ok", "models": "ok"},
    }
    assert svc.health()["status"] == "ok"
    r = svc.http.get("/metrics")
    assert r.status_code == 404 and r.json()["error"]["code"] == "not_found"
    bare = svc.http.get("/readyz", headers={"authorization": ""})
    assert bare.status_code == 200  # no key needed


@pytest.fixture
def postgres() -> Iterator[PostgresServer]:
    """A server of this test's own: stopping the session's shared one would break other tests."""
    with postgres_cluster(postgres_bin()) as server:
        yield server


def test_not_ready_while_the_database_is_down(make_service: Any, postgres: PostgresServer) -> None:
    svc: Service = make_service(
        {"service": {"database_url": postgres.url}, "logging": {"format": "json"}}
    )
    assert svc.http.get("/readyz").status_code == 200

    postgres.stop()

    def refused() -> dict[str, Any] | None:
        r = svc.http.get("/readyz")
        return dict(r.json()) if r.status_code == 503 else None

    error = wait_until(refused, 30, "/readyz to answer 503")["error"]
    assert error["code"] == "not_ready"
    assert error["message"].startswith("not ready: database")
    checks = error["checks"]
    assert checks["database"].startswith("unreachable (")
    assert checks["migrations"] == "unknown (no database)" and checks["models"] == "ok"
    assert svc.http.get("/healthz").status_code == 200  # alive: restarting it would not help

    # The webhook loop fails on the database too; logged as one JSON object per line.
    def loop_failed() -> dict[str, Any] | None:
        text = (svc.root / "serve.log").read_text()
        for line in text.splitlines(keepends=True):
            if not line.startswith("{") or not line.endswith("\n"):
                continue  # what Python itself writes to stderr (warnings); a line half written
            entry = json.loads(line)
            if (
                entry["message"].startswith("background loop failed")
                and entry["loop"] == "webhooks"
            ):
                return dict(entry)
        return None

    entry = wait_until(loop_failed, 30, "the webhook loop's failure in the log")
    assert entry["level"] == "ERROR" and entry["failures"] >= 1
    assert entry["exception"].startswith("Traceback (most recent call last):")

    postgres.start()

    def ready() -> bool:
        return svc.http.get("/readyz").status_code == 200

    wait_until(ready, 60, "/readyz to answer 200 once PostgreSQL is back")
