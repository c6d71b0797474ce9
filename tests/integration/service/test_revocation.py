"""Consent gates every item: a participant without consent reaches no model, and revocation
mid-session stops their processing within a second and purges them from what follows."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

from rapport.samples import Recording
from tests.integration.service.conftest import Service


def _participant(counts: dict[str, object], who: str) -> dict[str, dict[str, int]]:
    per = counts["participants"]
    assert isinstance(per, dict)
    return dict(per.get(who, {"admitted": {}, "dropped": {}}))


def test_without_consent_nothing_reaches_a_model(service: Service, short_talk: Recording) -> None:
    s = service.session(short_talk)
    service.consent(s["id"], "someone-else")  # a consent, but not of the person in the media
    service.http.post(f"/v1/sessions/{s['id']}/start")
    done = service.wait_status(s["id"], "ended")
    # Someone who never consented is counted in the totals alone, never by name.
    assert "presenter" not in done["counts"]["participants"]
    assert done["counts"]["admitted"] == {}
    assert done["counts"]["dropped"]["no_consent"] > 0
    events = service.events(s["id"])
    summary = events[-1]["data"]
    assert summary["participants"] == {} and summary["dropped"]["no_consent"] > 0


def test_consent_for_some_modalities_only(service: Service, short_talk: Recording) -> None:
    s = service.session(short_talk)
    service.consent(s["id"], "presenter", modalities=["voice"])
    service.http.post(f"/v1/sessions/{s['id']}/start")
    done = service.wait_status(s["id"], "ended")
    presenter = _participant(done["counts"], "presenter")
    assert set(presenter["admitted"]) == {"voice"} and presenter["admitted"]["voice"] > 0
    assert presenter["dropped"]["no_consent_face"] > 0
    assert presenter["dropped"]["no_consent_text"] > 0


def test_expired_consent_stops_processing(service: Service, short_talk: Recording) -> None:
    s = service.session(short_talk, speed=1.0)
    now = datetime.now(UTC)
    service.consent(
        s["id"],
        "presenter",
        granted_at=now.isoformat(),
        expires_at=(now + timedelta(seconds=4)).isoformat(),
    )
    service.http.post(f"/v1/sessions/{s['id']}/start")
    done = service.wait_status(s["id"], "ended")
    presenter = _participant(done["counts"], "presenter")
    assert presenter["admitted"]["face"] > 0 and presenter["dropped"]["consent_expired"] > 0


def test_revocation_mid_session_stops_within_a_second(
    service: Service, short_talk: Recording
) -> None:
    s = service.session(short_talk, speed=1.0)  # paced like a live call: 8 s
    consent = service.consent(s["id"], "presenter")
    service.http.post(f"/v1/sessions/{s['id']}/start")
    # Revoke once a window has carried the person, so that their purge from what follows shows.
    carried = service.wait_event(
        s["id"],
        lambda e: e["type"] == "engagement.window" and "presenter" in e["data"]["participants"],
        "a window with the presenter in it",
    )
    before = _participant(service.http.get(f"/v1/sessions/{s['id']}").json()["counts"], "presenter")
    assert before["admitted"]["face"] > 0, "nothing was processed before the revocation"
    sent = time.time()
    r = service.http.post(f"/v1/consents/{consent['id']}/revoke")
    answered = time.time()
    assert r.status_code == 200 and r.json()["status"] == "revoked"
    at_revoke = _participant(
        service.http.get(f"/v1/sessions/{s['id']}").json()["counts"], "presenter"
    )
    done = service.wait_status(s["id"], "ended")
    after = _participant(done["counts"], "presenter")
    # Not one more item of the person reached a model once the revocation was answered...
    assert after["admitted"] == at_revoke["admitted"]
    assert after["dropped"]["consent_revoked"] > 0
    # ...and the last one admitted came before the request was answered (bound: 1 s after sent).
    last = after["last_admitted_at"]
    assert isinstance(last, float) and last <= answered and last - sent < 1.0
    events = service.events(s["id"])
    revoked = [e for e in events if e["type"] == "consent.revoked"]
    assert len(revoked) == 1 and revoked[0]["data"]["consent_id"] == consent["id"]
    # Purged: windows after the revocation no longer carry the person.
    later = [
        e
        for e in events
        if e["type"] == "engagement.window"
        and e["seq"] > revoked[0]["seq"]
        and e["media_time"]["start"] > revoked[0]["media_time"]["end"]
    ]
    assert carried["seq"] < revoked[0]["seq"]
    assert later and all("presenter" not in e["data"]["participants"] for e in later)
    assert "presenter" not in events[-1]["data"]["participants"]
    print(
        f"revocation: answered in {1000 * (answered - sent):.0f} ms; last item admitted "
        f"{1000 * (last - sent):+.0f} ms from the request"
    )
