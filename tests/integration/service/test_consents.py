"""Consents through a real server: signed records anyone can verify with the published public key,
the exported hash-chained log, revocation, the purpose policy at the API, and subject erasure."""

from __future__ import annotations

import base64
import hashlib
import itertools
import json
import time
from datetime import UTC, date, datetime, timedelta
from typing import Any

import httpx
import pytest
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from websockets.sync.client import connect

from rapport.consent.policy import PURPOSES
from rapport.consent.records import LogEntry, public_keys_from_jwks, verify_log
from rapport.samples import Recording
from tests.fakes.receiver import webhook_receiver
from tests.integration.service.conftest import Service

GENESIS = "0" * 64

# -- an independent verifier: only hashlib, json, base64 and cryptography ------------------------


def _canonical(obj: object) -> bytes:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def _sha256(obj: object) -> str:
    return hashlib.sha256(_canonical(obj)).hexdigest()


def _b64url(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _public_key(jwks: dict[str, Any], kid: str) -> Ed25519PublicKey:
    (jwk,) = [k for k in jwks["keys"] if k["kid"] == kid]
    assert (jwk["kty"], jwk["crv"], jwk["alg"]) == ("OKP", "Ed25519", "EdDSA")
    return Ed25519PublicKey.from_public_bytes(_b64url(jwk["x"]))


def verify_signed(record: dict[str, Any], signed: dict[str, Any], jwks: dict[str, Any]) -> None:
    """AssertionError or InvalidSignature unless `signed` is a valid signature over `record`."""
    content_hash = _sha256(record)
    assert content_hash == signed["content_hash"], "content_hash does not match the record"
    entry_hash = _sha256(
        {
            "seq": signed["seq"],
            "kind": signed["kind"],
            "content_hash": content_hash,
            "prev_hash": signed["prev_hash"],
        }
    )
    assert entry_hash == signed["entry_hash"], "entry_hash does not match"
    key = _public_key(jwks, signed["kid"])
    key.verify(_b64url(signed["signature"]), entry_hash.encode("ascii"))


def fails_verification(
    record: dict[str, Any], signed: dict[str, Any], jwks: dict[str, Any]
) -> bool:
    try:
        verify_signed(record, signed, jwks)
    except (AssertionError, InvalidSignature):
        return True
    return False


# -- helpers -------------------------------------------------------------------------------------


def room_session(svc: Service, **fields: Any) -> Any:
    body = {"room": f"room-{time.monotonic_ns()}", "jurisdiction": "DE", **fields}
    return svc.http.post("/v1/sessions", json=body)


def export(svc: Service) -> tuple[list[LogEntry], dict[str, Any], str]:
    r = svc.http.get("/v1/consents/log")
    assert r.status_code == 200, r.text
    body = r.json()
    return [LogEntry.from_dict(e) for e in body["entries"]], body, r.text


def verified_log(svc: Service) -> list[LogEntry]:
    entries, body, _ = export(svc)
    published = svc.http.get("/.well-known/rapport-keys.json").json()
    assert body["keys"] == published["keys"]
    assert verify_log(entries, public_keys_from_jwks(published)) == []
    assert [e.seq for e in entries] == list(range(len(entries)))
    assert entries[0].prev_hash == GENESIS
    for prev, entry in itertools.pairwise(entries):
        assert entry.prev_hash == prev.entry_hash
    return entries


def first_heartbeat_or_close(svc: Service, session_id: str) -> list[dict[str, Any]]:
    """What the WebSocket replays before it goes live (the first heartbeat) or closes."""
    out: list[dict[str, Any]] = []
    with connect(
        f"{svc.ws_url}/v1/events?session={session_id}",
        additional_headers={"authorization": f"Bearer {svc.key}"},
    ) as ws:
        for message in ws:
            m = json.loads(message)
            if m["type"] == "heartbeat":
                break
            if m["type"] != "stream.reset":
                out.append(m)
    return out


# -- tests ---------------------------------------------------------------------------------------


def test_consent_record_verifies_with_the_public_key_alone(
    service: Service, short_talk: Recording
) -> None:
    session = service.session(short_talk)
    before = datetime.now(UTC)
    consent = service.consent(session["id"], "presenter", modalities=["voice", "face"])
    jwks = service.http.get("/.well-known/rapport-keys.json")
    assert jwks.status_code == 200
    jwks_body = jwks.json()

    record, signed = consent["record"], consent["signed"]
    assert consent["status"] == "active" and consent["revocation"] is None
    assert record["consent_id"] == consent["id"]
    assert record["user_id"] == "presenter" and record["session_id"] == session["id"]
    assert record["purpose"] == "self_coaching" and record["jurisdiction"] == "DE"
    assert record["modalities"] == ["face", "voice"]
    recorded = datetime.fromisoformat(record["recorded_at"].replace("Z", "+00:00"))
    assert before - timedelta(seconds=5) <= recorded <= datetime.now(UTC) + timedelta(seconds=5)
    assert signed["kind"] == "grant"
    assert signed["seq"] == 0 and signed["prev_hash"] == GENESIS

    verify_signed(record, signed, jwks_body)

    # Any edit to the record, or to the signed entry, is caught by the same check.
    for key, value in [
        ("user_id", "someone-else"),
        ("modalities", ["face", "text", "voice"]),
        ("expires_at", "2099-01-01T00:00:00Z"),
        ("purpose", "research"),
    ]:
        assert fails_verification({**record, key: value}, signed, jwks_body), key
    assert fails_verification(
        {k: v for k, v in record.items() if k != "setting"}, signed, jwks_body
    )
    assert fails_verification(record, {**signed, "seq": 7}, jwks_body)
    assert fails_verification(record, {**signed, "kind": "revoke"}, jwks_body)
    # A forger recomputing both hashes for an edited record still lacks the private key.
    forged = {**record, "user_id": "someone-else"}
    forged_content = _sha256(forged)
    forged_signed = {
        **signed,
        "content_hash": forged_content,
        "entry_hash": _sha256(
            {
                "seq": signed["seq"],
                "kind": "grant",
                "content_hash": forged_content,
                "prev_hash": signed["prev_hash"],
            }
        ),
    }
    with pytest.raises(InvalidSignature):
        verify_signed(forged, forged_signed, jwks_body)
    bad_sig = base64.urlsafe_b64encode(bytes(64)).rstrip(b"=").decode()
    assert fails_verification(record, {**signed, "signature": bad_sig}, jwks_body)

    # The same record comes back unchanged from GET and from the exported log.
    got = service.http.get(f"/v1/consents/{consent['id']}")
    assert got.status_code == 200 and got.json() == consent
    entries, _, _ = export(service)
    assert entries[0].content == record and entries[0].entry_hash == signed["entry_hash"]


def test_log_export_chains_and_records_revocations(service: Service, short_talk: Recording) -> None:
    s1 = service.session(short_talk)["id"]
    s2 = service.session(short_talk)["id"]
    a = service.consent(s1, "alice")
    b = service.consent(s1, "bob", modalities=["voice"])
    c = service.consent(s2, "alice")

    # Read one, and list by session, by user, and by both.
    assert service.http.get(f"/v1/consents/{b['id']}").json() == b
    by_session = service.http.get("/v1/consents", params={"session_id": s1})
    assert by_session.status_code == 200
    assert [x["id"] for x in by_session.json()] == [a["id"], b["id"]]
    by_user = service.http.get("/v1/consents", params={"user_id": "alice"}).json()
    assert [x["id"] for x in by_user] == [a["id"], c["id"]]
    both = service.http.get("/v1/consents", params={"user_id": "alice", "session_id": s2}).json()
    assert [x["id"] for x in both] == [c["id"]]
    assert service.http.get("/v1/consents", params={"user_id": "nobody"}).json() == []
    # Unfiltered: every consent in grant order, a page at a time (`after` = a page's last seq).
    every = [x["id"] for x in service.http.get("/v1/consents").json()]
    assert every == [a["id"], b["id"], c["id"]]
    page = service.http.get("/v1/consents", params={"limit": 2}).json()
    rest = service.http.get("/v1/consents", params={"after": page[-1]["signed"]["seq"]}).json()
    assert [x["id"] for x in page + rest] == every

    # Revoking is idempotent: the second call returns the same revocation.
    r1 = service.http.post(f"/v1/consents/{a['id']}/revoke")
    assert r1.status_code == 200, r1.text
    revoked = r1.json()
    assert revoked["status"] == "revoked" and revoked["revocation"]["kind"] == "revoke"
    assert revoked["signed"] == a["signed"] and revoked["record"] == a["record"]
    r2 = service.http.post(f"/v1/consents/{a['id']}/revoke")
    assert r2.status_code == 200
    assert r2.json()["revocation"]["seq"] == revoked["revocation"]["seq"]
    assert r2.json() == revoked
    assert service.http.get(f"/v1/consents/{a['id']}").json()["status"] == "revoked"
    assert service.http.get(f"/v1/consents/{b['id']}").json()["status"] == "active"

    entries = verified_log(service)
    assert [(e.seq, e.kind) for e in entries] == [
        (0, "grant"),
        (1, "grant"),
        (2, "grant"),
        (3, "revoke"),
    ]
    assert [e.content["consent_id"] for e in entries if e.content] == [
        a["id"],
        b["id"],
        c["id"],
        a["id"],
    ]
    assert entries[3].entry_hash == revoked["revocation"]["entry_hash"]
    assert entries[3].content is not None and entries[3].content["user_id"] == "alice"
    jwks = service.http.get("/.well-known/rapport-keys.json").json()
    verify_signed(entries[3].content, revoked["revocation"], jwks)

    # Paging through the export returns the same entries.
    page = service.http.get("/v1/consents/log", params={"after": 1, "limit": 1}).json()
    assert [e["seq"] for e in page["entries"]] == [2]
    assert LogEntry.from_dict(page["entries"][0]) == entries[2]

    # The library's verifier notices an edited export.
    keys = public_keys_from_jwks(jwks)
    edited = dict(entries[1].to_dict())
    edited["content"] = {**edited["content"], "modalities": ["face", "text", "voice"]}
    problems = verify_log([entries[0], LogEntry.from_dict(edited), *entries[2:]], keys)
    assert [p.seq for p in problems] == [1]
    assert verify_log([entries[0], *entries[2:]], keys) != []  # a dropped entry breaks the chain


REFUSED: list[tuple[str, dict[str, Any]]] = [
    *[
        (f"employee_monitoring in {j}", {"purpose": "employee_monitoring", "jurisdiction": j})
        for j in ("DE", "US", "US-CA", "GB", "JP", "US-NY-NYC")
    ],
    ("hiring_interview in DE", {"purpose": "hiring_interview", "jurisdiction": "DE"}),
    ("hiring_interview in US-IL", {"purpose": "hiring_interview", "jurisdiction": "US-IL"}),
    (
        "hiring_interview in NYC, no audit",
        {"purpose": "hiring_interview", "jurisdiction": "US-NY-NYC"},
    ),
    (
        "hiring_interview in NYC, stale audit",
        {
            "purpose": "hiring_interview",
            "jurisdiction": "US-NY-NYC",
            "bias_audit": (date.today() - timedelta(days=400)).isoformat(),
        },
    ),
    *[
        (f"student_attention in {j}", {"purpose": "student_attention", "jurisdiction": j})
        for j in ("DE", "US", "GB")
    ],
    (
        "self_coaching at work in DE",
        {"purpose": "self_coaching", "jurisdiction": "DE", "setting": "workplace"},
    ),
    (
        "research in education in FR",
        {"purpose": "research", "jurisdiction": "FR", "setting": "education"},
    ),
]

ALLOWED: list[tuple[str, dict[str, Any]]] = [
    (
        "self_coaching consumer DE",
        {"purpose": "self_coaching", "jurisdiction": "DE", "setting": "consumer"},
    ),
    (
        "telehealth at work in FR",
        {"purpose": "telehealth", "jurisdiction": "FR", "setting": "workplace"},
    ),
    ("research in DE", {"purpose": "research", "jurisdiction": "DE"}),
    ("research in US", {"purpose": "research", "jurisdiction": "US", "reporting": "participant"}),
    (
        "support_quality room",
        {"purpose": "support_quality", "jurisdiction": "DE", "reporting": "room"},
    ),
    (
        "hiring_interview in NYC with a recent audit",
        {
            "purpose": "hiring_interview",
            "jurisdiction": "US-NY-NYC",
            "bias_audit": (date.today() - timedelta(days=30)).isoformat(),
        },
    ),
]


def test_purpose_policy_at_the_api(service: Service, short_talk: Recording) -> None:
    for label, fields in REFUSED:
        r = room_session(service, **fields)
        assert r.status_code == 422, (label, r.text)
        error = r.json()["error"]
        assert error["code"] == "purpose_refused", label
        assert isinstance(error["message"], str) and error["message"].strip(), label
        assert "\n" not in error["message"], label
        assert isinstance(error["legal_basis"], str) and error["legal_basis"], label
        assert isinstance(error["alternative"], str) and error["alternative"], label
    eu = room_session(service, purpose="self_coaching", jurisdiction="DE", setting="workplace")
    assert "AI Act" in eu.json()["error"]["legal_basis"]
    nyc = room_session(service, purpose="hiring_interview", jurisdiction="US-NY-NYC")
    assert "144" in nyc.json()["error"]["legal_basis"]
    # A recording is refused the same way, before anything about it is read.
    r = service.http.post(
        "/v1/sessions",
        json={
            "recording": str(short_talk.path),
            "transcript": str(short_talk.transcript),
            "purpose": "employee_monitoring",
            "jurisdiction": "US",
        },
    )
    assert r.status_code == 422 and r.json()["error"]["code"] == "purpose_refused"

    sessions: dict[str, dict[str, Any]] = {}
    for label, fields in ALLOWED:
        r = room_session(service, **fields)
        assert r.status_code == 201, (label, r.text)
        body = r.json()
        assert body["purpose"] == fields["purpose"] and body["status"] == "created"
        assert body["jurisdiction"] == fields["jurisdiction"]
        sessions[label] = body
    recorded = service.session(short_talk, purpose="research", reporting="participant")
    assert recorded["reporting"] == "participant"

    # support_quality (and the other room-only purposes) refuse per-participant reporting.
    r = room_session(service, purpose="support_quality", jurisdiction="DE", reporting="participant")
    assert r.status_code == 422 and r.json()["error"]["code"] == "reporting_refused"
    assert r.json()["error"]["message"]
    r = room_session(
        service,
        purpose="hiring_interview",
        jurisdiction="US-NY-NYC",
        bias_audit=(date.today() - timedelta(days=30)).isoformat(),
        reporting="participant",
    )
    assert r.status_code == 422 and r.json()["error"]["code"] == "reporting_refused"

    # A consent must be to the session's own purpose.
    support = sessions["support_quality room"]["id"]
    r = service.http.post(
        "/v1/consents",
        json=consent_body(support, "caller", purpose="self_coaching"),
    )
    assert r.status_code == 422, r.text
    error = r.json()["error"]
    assert error["code"] == "purpose_mismatch" and "support_quality" in error["message"]
    ok = service.http.post(
        "/v1/consents", json=consent_body(support, "caller", purpose="support_quality")
    )
    assert ok.status_code == 201, ok.text
    # ...and lawful in the jurisdiction it is given in (the NYC audit does not travel to DE).
    hiring = sessions["hiring_interview in NYC with a recent audit"]["id"]
    r = service.http.post(
        "/v1/consents",
        json=consent_body(hiring, "candidate", purpose="hiring_interview", jurisdiction="DE"),
    )
    assert r.status_code == 422 and r.json()["error"]["code"] == "purpose_refused"
    r = service.http.post(
        "/v1/consents",
        json=consent_body(
            hiring, "candidate", purpose="hiring_interview", jurisdiction="US-NY-NYC"
        ),
    )
    assert r.status_code == 201, r.text
    assert r.json()["record"]["setting"] is None


def consent_body(session_id: str, user_id: str, **fields: Any) -> dict[str, Any]:
    now = datetime.now(UTC)
    return {
        "user_id": user_id,
        "session_id": session_id,
        "purpose": "self_coaching",
        "purpose_text": "What this session is for, exactly as shown.",
        "notice_version": "2026-11",
        "jurisdiction": "DE",
        "modalities": ["face", "voice", "text"],
        "granted_at": now.isoformat(),
        "expires_at": (now + timedelta(hours=1)).isoformat(),
        **fields,
    }


def test_purposes_catalogue(service: Service) -> None:
    r = service.http.get("/v1/purposes")
    assert r.status_code == 200
    body = r.json()
    assert sorted(p["code"] for p in body["purposes"]) == sorted(PURPOSES)
    for p in body["purposes"]:
        assert p["title"] and p["description"] and p["allowed"] and p["refused_in"]
        assert p["per_participant"] is PURPOSES[p["code"]].per_participant
    assert body["notice"]
    # Public, like the keys: no API key needed.
    assert httpx.get(f"{service.url}/v1/purposes").status_code == 200
    assert httpx.get(f"{service.url}/.well-known/rapport-keys.json").status_code == 200


def test_erasure_of_a_subject(service: Service, short_talk: Recording) -> None:
    user = "presenter"  # the speaker the transcript names
    with webhook_receiver() as receiver:
        hook = service.http.post("/v1/webhooks", json={"url": receiver.url})
        assert hook.status_code == 201, hook.text
        session = service.session(short_talk)
        other = service.session(short_talk)
        bystander = service.consent(other["id"], "bystander-7f3a")
        mine = service.consent(session["id"], user)
        earlier = service.consent(other["id"], user)
        assert service.http.post(f"/v1/consents/{earlier['id']}/revoke").status_code == 200
        start = service.http.post(f"/v1/sessions/{session['id']}/start")
        assert start.status_code == 200, start.text
        service.wait_status(session["id"], "ended")
        receiver.wait_for(lambda rs: any(b'"session.summary"' in r.body for r in rs))
        assert first_heartbeat_or_close(service, session["id"])  # events are kept until...
        before = verified_log(service)
        mine_seqs = sorted(e.seq for e in before if e.content and e.content.get("user_id") == user)
        assert len(mine_seqs) == 3  # two grants and a revocation

        r = service.http.delete(f"/v1/subjects/{user}")
        assert r.status_code == 200, r.text
        out = r.json()
        assert out["user_id"] == user
        assert out["consents_erased"] == 2
        assert out["sessions_affected"] == 2
        assert out["events_deleted"] > 0
        assert out["deliveries_deleted"] > 0
        assert isinstance(out["erasure_seq"], int)

    assert first_heartbeat_or_close(service, session["id"]) == []
    for consent in (mine, earlier):
        gone = service.http.get(f"/v1/consents/{consent['id']}")
        assert gone.status_code == 404 and gone.json()["error"]["code"] == "not_found"
    assert service.http.get("/v1/consents", params={"user_id": user}).json() == []
    assert service.http.get(f"/v1/consents/{bystander['id']}").json()["status"] == "active"

    after = verified_log(service)
    last = after[-1]
    assert last.seq == out["erasure_seq"] == len(before)
    assert last.kind == "erasure" and last.content is not None
    assert last.content["erased_seqs"] == mine_seqs
    for old, new in zip(before, after, strict=False):
        assert new.entry_hash == old.entry_hash and new.signature == old.signature
        if old.seq in mine_seqs:
            assert new.content is None
        else:
            assert new.content == old.content
    _, _, text = export(service)
    assert user not in text
    assert "bystander-7f3a" in text
    # Erasing again finds nothing more.
    again = service.http.delete(f"/v1/subjects/{user}").json()
    assert again["consents_erased"] == 0 and again["erasure_seq"] is None


def test_replay_of_an_erased_session_closes(service: Service, short_talk: Recording) -> None:
    session = service.session(short_talk)
    service.consent(session["id"], "presenter")
    assert service.http.post(f"/v1/sessions/{session['id']}/start").status_code == 200
    service.wait_status(session["id"], "ended")
    assert service.http.delete("/v1/subjects/presenter").status_code == 200
    with connect(
        f"{service.ws_url}/v1/events?session={session['id']}",
        additional_headers={"authorization": f"Bearer {service.key}"},
    ) as ws:
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            try:
                ws.recv(timeout=max(0.1, deadline - time.monotonic()))
            except TimeoutError:
                break
            except Exception:  # closed by the server: what should happen
                return
    raise AssertionError("the server kept the connection of an ended session open")
