"""Media, transcripts and chat flow through a real livekit-server on loopback to an SDK client.

Plain tests drive asyncio with asyncio.run (no pytest-asyncio). SDK rules followed here: room event
handlers are plain functions that spawn tasks; stream readers are cancelled, never awaited to end.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from livekit import api, rtc

from rapport.livekit import LocalServer
from rapport.livekit.publisher import CHAT_TOPIC, TRANSCRIPTION_TOPIC, SimulatedParticipant
from rapport.samples import Recording
from tests.fakes.wait import wait_until_async
from tests.integration.conftest import LiveKitPair

ROOM = "loopback"


@dataclass
class Seen:
    """What the subscriber received."""

    video: list[tuple[int, int]] = field(default_factory=list)  # (width, height) per frame
    frame_ids: list[int] = field(default_factory=list)
    audio_rates: set[int] = field(default_factory=set)
    audio_frames: int = 0
    # (identity, track sid, text) per final segment; (identity, text, attributes) per text stream
    segments: list[tuple[str, str, str]] = field(default_factory=list)
    texts: list[tuple[str, str, dict[str, str]]] = field(default_factory=list)
    chat: list[tuple[str, str]] = field(default_factory=list)
    camera_muted: asyncio.Event = field(default_factory=asyncio.Event)


class Subscriber:
    """A subscribe-only client that asks for the LOW layer of every camera."""

    def __init__(self) -> None:
        self.room = rtc.Room()
        self.seen = Seen()
        self.tasks: list[asyncio.Task[None]] = []
        self.room.on("track_published", self._on_published)
        self.room.on("track_subscribed", self._on_subscribed)
        self.room.on("track_muted", self._on_muted)
        self.room.on("transcription_received", self._on_transcription)
        self.room.register_text_stream_handler(TRANSCRIPTION_TOPIC, self._on_text)
        self.room.register_text_stream_handler(CHAT_TOPIC, self._on_text)

    async def connect(self, server: LocalServer) -> None:
        token = server.token("viewer", room=ROOM, publish=False, hidden=True)
        await self.room.connect(server.url, token, rtc.RoomOptions(auto_subscribe=False))

    def _on_published(self, pub: rtc.RemoteTrackPublication, _: rtc.RemoteParticipant) -> None:
        pub.set_subscribed(True)

    def _on_subscribed(
        self, track: rtc.Track, pub: rtc.RemoteTrackPublication, _: rtc.RemoteParticipant
    ) -> None:
        if track.kind == rtc.TrackKind.KIND_VIDEO:
            pub.set_video_quality(rtc.VideoQuality.VIDEO_QUALITY_LOW)
            self.tasks.append(asyncio.create_task(self._read_video(track)))
        else:
            self.tasks.append(asyncio.create_task(self._read_audio(track)))

    def _on_muted(self, _: rtc.Participant, pub: rtc.TrackPublication) -> None:
        if pub.source == rtc.TrackSource.SOURCE_CAMERA:
            self.seen.camera_muted.set()

    def _on_transcription(
        self,
        segments: list[rtc.TranscriptionSegment],
        participant: rtc.Participant | None,
        pub: rtc.TrackPublication | None,
    ) -> None:
        who = participant.identity if participant else ""
        track = pub.sid if pub else ""
        self.seen.segments.extend((who, track, s.text) for s in segments if s.final)

    def _on_text(self, reader: rtc.TextStreamReader, identity: str) -> None:
        self.tasks.append(asyncio.create_task(self._read_text(reader, identity)))

    async def _read_text(self, reader: rtc.TextStreamReader, identity: str) -> None:
        text = await reader.read_all()
        if reader.info.topic == CHAT_TOPIC:
            self.seen.chat.append((identity, text))
        else:
            self.seen.texts.append((identity, text, dict(reader.info.attributes or {})))

    async def _read_video(self, track: rtc.Track) -> None:
        async for event in rtc.VideoStream(track):
            self.seen.video.append((event.frame.width, event.frame.height))
            if event.metadata is not None:
                self.seen.frame_ids.append(event.metadata.frame_id)

    async def _read_audio(self, track: rtc.Track) -> None:
        async for event in rtc.AudioStream(track, sample_rate=16000, num_channels=1):
            self.seen.audio_rates.add(event.frame.sample_rate)
            self.seen.audio_frames += 1

    async def close(self) -> None:
        for task in self.tasks:
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        await self.room.disconnect()


async def _until(check: Callable[[], object], timeout_s: float) -> None:
    """Polls `check` until it holds; fails the test past the deadline."""
    deadline = time.monotonic() + timeout_s
    while not check():
        assert time.monotonic() < deadline, f"not reached within {timeout_s} s"
        await asyncio.sleep(0.05)


def test_media_transcripts_and_chat_reach_a_subscriber(
    livekit_server: LocalServer, livekit_clip: Recording
) -> None:
    width, height = livekit_clip.size

    async def run() -> tuple[Seen, SimulatedParticipant]:
        sub = Subscriber()
        await sub.connect(livekit_server)
        alice = SimulatedParticipant(
            livekit_server.url,
            livekit_server.token("alice", room=ROOM),
            livekit_clip,
            transcriber_token=livekit_server.token("agent-stt", room=ROOM, agent=True),
        )
        try:
            await alice.start()
            await alice.chat("hello from alice")
            seen = sub.seen
            low = (width // 4, height // 4)
            await _until(
                lambda: (
                    seen.video.count(low) >= 10
                    and seen.audio_frames >= 100
                    and len(seen.segments) >= 2
                    and len(seen.texts) >= 2
                    and seen.chat
                ),
                timeout_s=15,
            )
            await alice.camera(False)
            await asyncio.wait_for(seen.camera_muted.wait(), 5)
        finally:
            await alice.stop()
            await sub.close()
        return seen, alice

    seen, alice = asyncio.run(run())

    assert alice.size == (width, height) and len(alice.captured) > 20
    assert seen.video, "no video frame crossed the loopback server"
    assert seen.video[-1] == (width // 4, height // 4), seen.video[-5:]  # the LOW layer
    assert seen.frame_ids and max(seen.frame_ids) < len(alice.captured)
    assert seen.audio_frames >= 100 and seen.audio_rates == {16000}
    lines = [u.text for u in livekit_clip.speech]
    assert seen.segments == [("alice", alice.mic_sid, line) for line in lines]
    assert [(who, text) for who, text, _ in seen.texts] == [("alice", line) for line in lines]
    attrs = seen.texts[0][2]
    assert attrs["lk.transcribed_track_id"] == alice.mic_sid
    assert attrs["lk.transcription_final"] == "true" and attrs["lk.segment_id"]
    assert seen.chat == [("alice", "hello from alice")]


def test_restart_keeps_url_and_keys_and_clients_reconnect(livekit_binary: Path) -> None:
    async def run(server: LocalServer) -> list[str]:
        events: list[str] = []
        room = rtc.Room()
        room.on("reconnected", lambda: events.append("reconnected"))
        await room.connect(server.url, server.token("bob", room=ROOM))
        url, key = server.url, server.api_key
        server.restart()
        assert (server.url, server.api_key) == (url, key)
        await _until(lambda: "reconnected" in events, timeout_s=10)
        fresh = rtc.Room()
        await fresh.connect(server.url, server.token("carol", room=ROOM))
        await _until(lambda: "bob" in fresh.remote_participants, timeout_s=5)
        events.extend(fresh.remote_participants)
        await fresh.disconnect()
        await room.disconnect()
        return events

    with LocalServer(binary=livekit_binary) as server:  # its own: restart() kills every room
        events = asyncio.run(run(server))
    assert events == ["reconnected", "bob"]


@pytest.mark.parametrize("home", ["any", "a", "b"])
def test_two_nodes_sharing_redis_serve_one_room(livekit_pair: LiveKitPair, home: str) -> None:
    """A room made through node A (127.0.0.1) is listed through node B (127.0.0.2), and a client
    that joins through B is listed as a participant through A: wherever the room lives (placed by
    the cluster, or pinned to A or to B, so that both ways across the nodes are crossed)."""
    a, b = livekit_pair.nodes
    assert (a.host, b.host) == ("127.0.0.1", "127.0.0.2")
    assert a.node_id and b.node_id and a.node_id != b.node_id
    pin = {"any": "", "a": a.node_id, "b": b.node_id}[home]
    room_name = f"two-nodes-{home}"

    async def run() -> tuple[list[str], list[str]]:
        async with (
            api.LiveKitAPI(a.http_url, a.api_key, a.api_secret) as via_a,
            api.LiveKitAPI(b.http_url, b.api_key, b.api_secret) as via_b,
        ):
            await via_a.room.create_room(api.CreateRoomRequest(name=room_name, node_id=pin))

            async def listed_on_b() -> list[str]:
                rooms = await via_b.room.list_rooms(api.ListRoomsRequest(names=[room_name]))
                return [r.name for r in rooms.rooms]

            async def participants_on_a() -> list[str]:
                req = api.ListParticipantsRequest(room=room_name)
                found = await via_a.room.list_participants(req)
                return [p.identity for p in found.participants]

            try:
                rooms = await wait_until_async(listed_on_b, 10, f"{room_name} listed via B")
                client = rtc.Room()
                # Same keys: a token signed for node A is good on node B.
                await asyncio.wait_for(client.connect(b.url, a.token("dave", room=room_name)), 20)
                try:
                    people = await wait_until_async(
                        participants_on_a, 10, "dave listed as a participant via A"
                    )
                    assert client.connection_state == rtc.ConnectionState.CONN_CONNECTED
                finally:
                    await client.disconnect()
            finally:
                await via_a.room.delete_room(api.DeleteRoomRequest(room=room_name))
        return rooms, people

    rooms, people = asyncio.run(run())
    assert rooms == [room_name]
    assert people == ["dave"]
