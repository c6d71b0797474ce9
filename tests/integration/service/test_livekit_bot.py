"""The bot against a real livekit-server: `rapport serve --livekit-*` with LiveKit's webhooks
pointed at it, participants published with the livekit SDK, events read over the WebSocket and
from a webhook receiver. Everything runs on 127.0.0.1."""

from __future__ import annotations

import asyncio
import itertools
import json
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from rapport.livekit import LocalServer
from rapport.livekit.publisher import SimulatedParticipant
from rapport.samples import Recording, make_recording
from tests.fakes.receiver import Receiver
from tests.integration.service.conftest import Service

ROOM = "standup"


@pytest.fixture(scope="session")
def call_720p(media_dir: Path) -> Recording:
    """12 s at 1280x720 (its simulcast LOW layer is 320x180), speech and a transcript."""
    return make_recording(
        media_dir / "call720.mp4",
        duration_s=12.0,
        size=(1280, 720),
        fps=15,
        speech=(
            (0.5, "Good morning, thanks for joining the call."),
            (5.0, "I am really happy with how the launch went."),
        ),
        transcript=media_dir / "call720.vtt",
    )


class Room:
    """A LiveKit server whose webhooks go to a rapport service that knows it."""

    def __init__(self, make_service: Any, livekit_binary: Path, tmp: Path, **lk: Any) -> None:
        self.lk = LocalServer(
            binary=livekit_binary, log_path=tmp / "livekit.log", departure_timeout_s=1
        )
        self.svc: Service = make_service(
            {
                "livekit": {
                    "url": self.lk.url,
                    "api_key": self.lk.api_key,
                    "api_secret": self.lk.api_secret,
                    **lk,
                }
            }
        )
        self.lk.webhook_url = f"{self.svc.url}/v1/livekit/webhook"
        self.lk.start()

    def session(self, **fields: Any) -> str:
        body = {
            "room": ROOM,
            "purpose": "self_coaching",
            "jurisdiction": "DE",
            "setting": "consumer",
            "reporting": "participant",
            **fields,
        }
        r = self.svc.http.post("/v1/sessions", json=body)
        assert r.status_code == 201, r.text
        return str(r.json()["id"])

    def participant(self, identity: str, recording: Recording, **kw: Any) -> SimulatedParticipant:
        return SimulatedParticipant(
            self.lk.url,
            self.lk.token(identity, room=ROOM),
            recording,
            loop=True,
            transcriber_token=self.lk.token(f"agent-{identity}", room=ROOM, agent=True),
            **kw,
        )

    def get(self, session_id: str) -> dict[str, Any]:
        return dict(self.svc.http.get(f"/v1/sessions/{session_id}").json())

    async def until(
        self, session_id: str, ok: Callable[[dict[str, Any]], bool], timeout: float = 30
    ) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            s = await asyncio.to_thread(self.get, session_id)
            if ok(s):
                return s
            assert time.monotonic() < deadline, f"timed out; session is {s}"
            await asyncio.sleep(0.1)

    def stop(self) -> None:
        self.lk.stop()


@pytest.fixture
def room(make_service: Any, livekit_binary: Path, tmp_path: Path) -> Iterator[Room]:
    r = Room(make_service, livekit_binary, tmp_path)
    yield r
    r.stop()


def admitted(s: dict[str, Any], who: str) -> dict[str, int]:
    return dict(s["counts"].get("participants", {}).get(who, {}).get("admitted", {}))


def caught_up(s: dict[str, Any], who: str) -> bool:
    """Every frame the bot took of `who` (the only camera) reached the session or was dropped."""
    lk = s["counts"]["livekit"]
    taken = admitted(s, who).get("face", 0) + lk["video_frames_behind_session"]
    return bool(taken == lk["video_frames"])


def windows(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [e for e in events if e["type"] == "engagement.window"]


def run(coro: Callable[[], Awaitable[None]]) -> None:
    asyncio.run(asyncio.wait_for(coro(), 120))


def test_the_bot_taps_consenting_participants_only(
    room: Room, call_720p: Recording, call_small: Recording, receiver: Receiver
) -> None:
    svc = room.svc
    r = svc.http.post(
        "/v1/webhooks", json={"url": receiver.url, "event_types": ["session.summary"]}
    )
    assert r.status_code == 201, r.text
    sid = room.session()
    svc.consent(sid, "alice")

    async def call() -> None:
        async with room.participant("alice", call_720p), room.participant("bob", call_small):
            await room.until(sid, lambda s: s["status"] == "running")
            await room.until(
                sid,
                lambda s: (
                    admitted(s, "alice").get("text", 0) >= 1
                    and admitted(s, "alice").get("face", 0) >= 12
                    and admitted(s, "alice").get("voice", 0) >= 1
                ),
            )
        # The publishers left: the room closes (departure timeout 1 s) and the bot with it.

    run(call)
    s = svc.wait_status(sid, "ended", timeout=60)
    lk = s["counts"]["livekit"]
    assert lk["video_size"]["alice"] == [320, 180]  # the LOW simulcast layer of 1280x720
    assert set(lk["ever_subscribed"]) == {"alice/video", "alice/audio"}
    assert admitted(s, "bob") == {}  # never subscribed: nothing of bob's reached a model
    dropped_bob = s["counts"]["participants"].get("bob", {}).get("dropped", {})
    assert set(dropped_bob) <= {"no_consent"}  # his transcript reached the gate, and stopped
    events = svc.events(sid)
    assert [e["seq"] for e in events] == list(range(len(events)))
    assert events[0]["type"] == "session.started"
    assert events[0]["data"]["source"] == "livekit"
    assert events[-1]["type"] == "session.summary"
    assert windows(events), "no engagement window came out"
    for e in events:
        assert "bob" not in str(e["data"])  # reported on no one without consent
    summary = events[-1]["data"]
    assert "alice" in str(summary["participants"])
    got = receiver.wait_for(lambda got: len(got) >= 1, timeout=20)
    delivered = [json.loads(r.body) for r in got]
    assert [(d["type"], d["session_id"], d["id"]) for d in delivered] == [
        ("session.summary", sid, events[-1]["id"])
    ]


def test_the_bot_takes_only_the_low_layer_from_the_first_frame(
    room: Room, call_720p: Recording
) -> None:
    """A 1280x720 simulcast camera: the bot asks for LOW (320x180) before it subscribes, and any
    larger frame that still comes first is dropped, never analysed."""
    svc = room.svc
    sid = room.session()
    svc.consent(sid, "alice")

    async def call() -> None:
        async with room.participant("alice", call_720p):
            await room.until(sid, lambda s: admitted(s, "alice").get("face", 0) >= 12)

    run(call)
    s = svc.wait_status(sid, "ended", timeout=60)
    lk = s["counts"]["livekit"]
    assert lk["video_frames"] >= 12
    assert lk["video_largest_taken"] == [320, 180]  # every frame taken, the first one too


def test_revocation_unsubscribes_and_stops_within_a_second(
    room: Room, call_720p: Recording
) -> None:
    svc = room.svc
    sid = room.session()
    consent = svc.consent(sid, "alice")
    timing: dict[str, float] = {}

    async def call() -> None:
        async with room.participant("alice", call_720p):
            await room.until(sid, lambda s: admitted(s, "alice").get("face", 0) >= 8)
            r = await asyncio.to_thread(svc.http.post, f"/v1/consents/{consent['id']}/revoke")
            assert r.status_code == 200, r.text
            timing["revoked"] = time.time()
            s = await room.until(sid, lambda s: not s["counts"]["livekit"]["subscribed"], 1.0)
            timing["unsubscribed"] = time.time()
            # Not a wait for a state: alice goes on publishing for 2 s, none of it to be admitted.
            await asyncio.sleep(2.0)
            timing["after"] = admitted(await asyncio.to_thread(room.get, sid), "alice")["face"]
            timing["before"] = admitted(s, "alice")["face"]

    run(call)
    assert timing["unsubscribed"] - timing["revoked"] < 1.0
    assert timing["after"] == timing["before"]  # nothing of hers admitted after the revocation
    s = svc.wait_status(sid, "ended", timeout=60)
    assert s["counts"]["participants"]["alice"]["last_admitted_at"] < timing["revoked"]
    types = [e["type"] for e in svc.events(sid)]
    assert "consent.revoked" in types and types[-1] == "session.summary"


class LiveEvents:
    """A dashboard's WebSocket, connected before the call, collecting events as they arrive."""

    def __init__(self, svc: Service, session_id: str) -> None:
        import threading

        from websockets.sync.client import connect

        token = svc.http.post(f"/v1/sessions/{session_id}/tokens").json()["token"]
        self._ws = connect(f"{svc.ws_url}/v1/events?session={session_id}&token={token}")
        self.events: list[tuple[float, dict[str, Any]]] = []
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        import json

        for message in self._ws:
            m = json.loads(message)
            if m.get("type") not in ("heartbeat", "stream.reset"):
                self.events.append((time.time(), m))
            if m.get("type") == "session.summary":
                return

    def close(self) -> list[dict[str, Any]]:
        self._thread.join(30)
        self._ws.close()
        return [e for _, e in self.events]


@pytest.mark.parametrize("cut", ["restart", "down 8 s", "frozen 6 s"])
def test_a_livekit_server_restart_or_network_cut_resumes_the_same_session(
    room: Room, call_720p: Recording, cut: str
) -> None:
    """The server killed and back at once (the SDK resumes), down for 8 s (the SDK reconnects
    after several tries; the participant joins again if its own SDK gave up, as a person would),
    or frozen for 6 s (SIGSTOP: nothing flows, connections stay open, as in a network cut)."""
    svc = room.svc
    sid = room.session()
    svc.consent(sid, "alice")
    live = LiveEvents(svc, sid)
    marks: dict[str, Any] = {}

    async def call() -> None:
        async with room.participant("alice", call_720p) as alice:
            s = await room.until(sid, lambda s: admitted(s, "alice").get("face", 0) >= 8)
            if cut == "frozen 6 s":
                await asyncio.to_thread(room.lk.freeze, 6.0)
            else:
                await asyncio.to_thread(room.lk.stop)  # killed: rooms and connections are lost
                if cut == "down 8 s":
                    await asyncio.sleep(8.0)  # the outage itself: time passes with no server
                await asyncio.to_thread(room.lk.start)
            marks["restarted"] = time.time()
            before = admitted(s, "alice")["face"]
            if not alice.room.isconnected():
                await alice.stop()
                alice = await room.participant("alice", call_720p).start()
            s = await room.until(
                sid, lambda s: admitted(s, "alice").get("face", 0) >= before + 8, 60
            )
            marks["s"] = s
            await alice.stop()

    run(call)
    s = svc.wait_status(sid, "ended", timeout=60)
    events = live.close()
    assert s["status"] == "ended" and s["error"] is None
    assert [e["seq"] for e in events] == list(range(len(events)))  # no gap, no duplicate
    assert len({e["id"] for e in events}) == len(events)
    types = [e["type"] for e in events]
    assert types.count("session.started") == 1 and types.count("session.summary") == 1
    spans = [(w["media_time"]["start"], w["media_time"]["end"]) for w in windows(events)]
    assert all(b[0] == a[1] for a, b in itertools.pairwise(spans)), spans  # one timeline
    after = [t for t, e in live.events if e["type"] == "engagement.window"]
    assert any(t > marks["restarted"] for t in after), "no window came out after the restart"
    assert marks["s"]["counts"]["livekit"]["subscribed"] == ["alice/audio", "alice/video"]


def test_camera_off_leaves_voice_and_text_flowing_and_on_again_brings_faces_back(
    room: Room, call_720p: Recording
) -> None:
    svc = room.svc
    sid = room.session()
    svc.consent(sid, "alice")
    seen: dict[str, dict[str, int]] = {}

    async def call() -> None:
        async with room.participant("alice", call_720p) as alice:
            await room.until(sid, lambda s: admitted(s, "alice").get("face", 0) >= 8)
            await alice.camera(False)
            # The bot heard of the mute (its reader drops what still arrives) and the session
            # has taken every frame the bot took: no face of alice's can be admitted after this.
            s = await room.until(
                sid, lambda s: s["counts"]["livekit"]["mutes"] == 1 and caught_up(s, "alice"), 10
            )
            seen["off"] = admitted(s, "alice")
            off = seen["off"]
            s = await room.until(
                sid,
                lambda s: (
                    admitted(s, "alice").get("text", 0) > off.get("text", 0)
                    and admitted(s, "alice")["voice"] > off["voice"] + 20
                ),
                30,
            )
            seen["later"] = admitted(s, "alice")
            await alice.camera(True)
            later = seen["later"]["face"]
            s = await room.until(sid, lambda s: admitted(s, "alice")["face"] >= later + 4, 20)
            said = s["counts"]["livekit"]["utterances"]
            await alice.chat("Back on camera, sorry about that.")
            await room.until(sid, lambda s: s["counts"]["livekit"]["utterances"] > said, 10)

    run(call)
    assert seen["later"]["face"] == seen["off"]["face"]  # no frame after the camera went off
    s = svc.wait_status(sid, "ended", timeout=60)
    assert s["status"] == "ended"
    events = svc.events(sid)
    assert events[-1]["type"] == "session.summary"


def _signed(lk: LocalServer, body: str, secret: str | None = None) -> str:
    import base64
    import hashlib

    from livekit import api

    digest = base64.b64encode(hashlib.sha256(body.encode()).digest()).decode()
    token = api.AccessToken(lk.api_key, secret or lk.api_secret).with_sha256(digest)
    return token.to_jwt()


def test_forged_and_replayed_livekit_webhooks_are_refused(room: Room) -> None:
    import json

    lk, svc = room.lk, room.svc
    url = f"{svc.url}/v1/livekit/webhook"
    body = json.dumps(
        {
            "event": "room_started",
            "id": "EV_test_replay",
            "createdAt": str(int(time.time())),
            "room": {"name": "no-session-here"},
        }
    )
    post = svc.http.post  # carries rapport's API key: LiveKit's signature must still decide

    def send(body: str, auth: str | None) -> Any:
        headers = {"content-type": "application/webhook+json"}
        if auth is not None:
            headers["authorization"] = auth
        return post(url, content=body, headers=headers)

    assert send(body, None).status_code == 401
    assert send(body, _signed(lk, body, secret="not-the-secret")).status_code == 401
    assert send(body.replace("no-session", "other"), _signed(lk, body)).status_code == 401
    first = send(body, _signed(lk, body))
    assert first.status_code == 200 and first.json()["outcome"] == "ignored", first.text
    replay = send(body, _signed(lk, body))
    assert replay.status_code == 409 and replay.json()["error"]["code"] == "duplicate_event"
    old = body.replace(str(int(time.time()))[:4], "1700")
    assert send(old, _signed(lk, old)).status_code == 409  # too old to act on


def test_reconciliation_joins_a_room_whose_webhook_was_lost(
    make_service: Any, livekit_binary: Path, tmp_path: Path, call_720p: Recording
) -> None:
    room = Room(make_service, livekit_binary, tmp_path, reconcile_s=1)
    try:
        room.lk.stop()
        room.lk.webhook_url = None  # LiveKit's webhooks never arrive
        room.lk.start()
        sid = room.session()
        room.svc.consent(sid, "alice")

        async def call() -> None:
            async with room.participant("alice", call_720p):
                await room.until(sid, lambda s: admitted(s, "alice").get("face", 0) >= 4, 30)

        run(call)
        s = room.svc.wait_status(sid, "ended", timeout=60)
        assert s["counts"]["livekit"]["joins"] >= 1
    finally:
        room.stop()
