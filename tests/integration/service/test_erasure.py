"""Erasure (DELETE /v1/subjects/{user}) against a real server: during a running session it stops
processing the person, withdraws what was stored, and what the session emits afterwards (its
summary too) carries nothing of them; after a session ended, its stored counters forget them."""

from __future__ import annotations

import json

from rapport.samples import Recording
from tests.integration.service.conftest import Service


def test_erasure_during_a_running_session_leaves_nothing_of_the_person(
    service: Service, short_talk: Recording
) -> None:
    # Issue 10 (5): the session went on storing and sending, its summary still carried the
    # timelines and moments computed from that person alone, and its counters their user id.
    s = service.session(short_talk, speed=1.0)  # paced like a live call: 8 s
    service.consent(s["id"], "presenter")
    service.http.post(f"/v1/sessions/{s['id']}/start")
    first = service.wait_event(
        s["id"],
        lambda e: e["type"] == "engagement.window" and "presenter" in e["data"]["participants"],
        "a window with the presenter in it",
    )
    r = service.http.delete("/v1/subjects/presenter")
    assert r.status_code == 200, r.text
    assert r.json()["sessions_affected"] == 1 and r.json()["events_deleted"] >= 3
    done = service.wait_status(s["id"], "ended")
    assert "presenter" not in json.dumps(done["counts"])
    events = service.events(s["id"])
    assert events, "the session's later events are stored"
    assert all("presenter" not in json.dumps(e["data"]) for e in events)
    assert all(e["seq"] > first["seq"] for e in events)  # what was stored before is gone
    summary = events[-1]
    assert summary["type"] == "session.summary"
    data = summary["data"]
    assert data["engagement_timeline"][0] is None and data["valence_timeline"][0] is None
    assert data["dropped"]["windows_withdrawn_by_erasure"] >= 1
    assert data["participants"] == {} and data["speaking_shares"] == {}
    assert not [m for m in data["moments"] if m["media_time"]["start"] < 5.0]


def test_erasure_after_a_session_ended_scrubs_its_stored_counters(
    service: Service, short_talk: Recording
) -> None:
    s = service.session(short_talk)
    service.consent(s["id"], "presenter")
    service.http.post(f"/v1/sessions/{s['id']}/start")
    done = service.wait_status(s["id"], "ended")
    assert done["counts"]["participants"]["presenter"]["admitted"]["face"] > 0
    admitted = done["counts"]["admitted"]
    r = service.http.delete("/v1/subjects/presenter")
    assert r.status_code == 200 and r.json()["consents_erased"] == 1
    after = service.http.get(f"/v1/sessions/{s['id']}").json()
    assert "presenter" not in json.dumps(after["counts"])
    assert after["counts"]["admitted"] == admitted  # the totals keep their numbers, unnamed
    assert service.events(s["id"]) == []
