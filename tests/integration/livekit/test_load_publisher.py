"""The Go load publisher (build/loadpub) against the local server: two participants, each a VP8
simulcast camera with three layers and an Opus microphone, sent from pre-encoded files.

A subscriber joins with the Python SDK, asks for every camera's LOW layer and reads it; the
server's view of the tracks (RoomService) shows the layers. Missing binary: skipped, or failed
where CI requires LiveKit (RAPPORT_REQUIRE_LIVEKIT), like the server itself.
"""

from __future__ import annotations

import asyncio
import os
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from livekit import api, rtc

from rapport.livekit import LocalServer
from rapport.livekit.load_publisher import LoadPublisher, LoadPublisherError, find_load_publisher
from rapport.livekit.preencoded import PreEncoded, preencoded_media
from tests.fakes.wait import wait_until_async
from tests.integration.livekit.conftest import CLIP_SIZE, CLIP_SPEECH

ROOM = "load-publisher"
DEADLINE_S = 20.0


@pytest.fixture(scope="module")
def loadpub_binary() -> Path:
    try:
        return find_load_publisher()
    except LoadPublisherError as e:
        if os.environ.get("RAPPORT_REQUIRE_LIVEKIT"):
            pytest.fail(f"RAPPORT_REQUIRE_LIVEKIT is set but {e}")
        pytest.skip(str(e))


@pytest.fixture(scope="module")
def media() -> PreEncoded:
    """4 s at 1280x720, 10 fps (cached under build/loadpub-media after the first run)."""
    return preencoded_media(size=CLIP_SIZE, fps=10, duration_s=4.0, speech=CLIP_SPEECH)


class Subscriber:
    """Subscribes to everything, the LOW layer of each camera; counts frames per identity."""

    def __init__(self) -> None:
        self.room = rtc.Room()
        self.video: dict[str, Counter[tuple[int, int]]] = {}
        self.audio: Counter[str] = Counter()
        self.tasks: list[asyncio.Task[None]] = []
        self.room.on("track_published", self._on_published)
        self.room.on("track_subscribed", self._on_subscribed)

    def _on_published(self, pub: rtc.RemoteTrackPublication, _: rtc.RemoteParticipant) -> None:
        if pub.kind == rtc.TrackKind.KIND_VIDEO:  # LOW asked before subscribing, as the bot does
            pub.set_video_quality(rtc.VideoQuality.VIDEO_QUALITY_LOW)
        pub.set_subscribed(True)

    def _on_subscribed(
        self, track: rtc.Track, pub: rtc.RemoteTrackPublication, p: rtc.RemoteParticipant
    ) -> None:
        if track.kind == rtc.TrackKind.KIND_VIDEO:
            pub.set_video_quality(rtc.VideoQuality.VIDEO_QUALITY_LOW)
            self.tasks.append(asyncio.create_task(self._read_video(p.identity, track)))
        else:
            self.tasks.append(asyncio.create_task(self._read_audio(p.identity, track)))

    async def _read_video(self, who: str, track: rtc.Track) -> None:
        sizes = self.video.setdefault(who, Counter())
        async for event in rtc.VideoStream(track):
            sizes[(event.frame.width, event.frame.height)] += 1

    async def _read_audio(self, who: str, track: rtc.Track) -> None:
        async for _ in rtc.AudioStream(track, sample_rate=48000, num_channels=1):
            self.audio[who] += 1

    async def close(self) -> None:
        for task in self.tasks:
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        await self.room.disconnect()


def test_load_publisher_sends_simulcast_camera_and_microphone(
    livekit_server: LocalServer, loadpub_binary: Path, media: PreEncoded, tmp_path: Path
) -> None:
    low = media.sizes[0]
    assert low == (CLIP_SIZE[0] // 4, CLIP_SIZE[1] // 4)

    async def run() -> tuple[Subscriber, list[api.ParticipantInfo]]:
        sub = Subscriber()
        token = livekit_server.token("viewer", room=ROOM, publish=False, hidden=True)
        await sub.room.connect(livekit_server.url, token, rtc.RoomOptions(auto_subscribe=False))
        pubs = LoadPublisher(
            livekit_server, ROOM, 2, media, binary=loadpub_binary, log_path=tmp_path / "pub.log"
        )
        lk = api.LiveKitAPI(
            livekit_server.http_url, livekit_server.api_key, livekit_server.api_secret
        )
        try:
            await asyncio.to_thread(pubs.start, DEADLINE_S)
            who = pubs.identities
            # 10 LOW frames (1 s) and 1 s of 10 ms audio frames from each participant.
            await wait_until_async(
                lambda: all(
                    sub.video.get(p, Counter())[low] >= 10 and sub.audio[p] >= 100 for p in who
                ),
                DEADLINE_S,
                lambda: f"LOW video and audio from {who}: video {sub.video}, audio {sub.audio}",
            )
            listed = await lk.room.list_participants(api.ListParticipantsRequest(room=ROOM))
            stats = await asyncio.to_thread(pubs.stop)
            assert stats is not None and set(stats["video_frames"]) == set(who)
            return sub, list(listed.participants)
        finally:
            pubs.stop()
            await sub.close()
            await lk.aclose()

    sub, participants = asyncio.run(run())

    published = {p.identity: p for p in participants if p.identity != "viewer"}
    assert sorted(published) == ["p00", "p01"]
    for who, p in published.items():
        video = [t for t in p.tracks if t.type == api.TrackType.VIDEO]
        audio = [t for t in p.tracks if t.type == api.TrackType.AUDIO]
        assert len(video) == 1 and len(audio) == 1, p.tracks
        assert video[0].source == api.TrackSource.CAMERA and video[0].simulcast
        assert sorted((layer.width, layer.height) for layer in video[0].layers) == list(
            media.sizes
        ), who
        assert audio[0].source == api.TrackSource.MICROPHONE and audio[0].mime_type == "audio/opus"
        # Only the LOW layer was asked for: no frame of another size after the first few (the
        # files answer no keyframe request: a layer switch waits up to a keyframe, 10 frames).
        sizes = sub.video[who]
        assert sizes[low] >= 10 and sum(sizes.values()) - sizes[low] <= 15, sizes


def test_load_publisher_speakers_take_turns(
    livekit_server: LocalServer, loadpub_binary: Path, media: PreEncoded, tmp_path: Path
) -> None:
    # With --turn 1s two participants speak in alternate seconds: the loud 100 ms slots of one
    # are silent in the other (all of them overlap without turns: the same clip at once).
    slots: dict[str, dict[int, float]] = {}

    async def run() -> None:
        room = rtc.Room()
        tasks: list[asyncio.Task[None]] = []
        t0 = asyncio.get_running_loop().time()

        async def read(who: str, track: rtc.Track) -> None:
            levels = slots.setdefault(who, {})
            async for event in rtc.AudioStream(track, sample_rate=16000, num_channels=1):
                x = np.frombuffer(event.frame.data, np.int16).astype(np.float32) / 32768.0
                k = int((asyncio.get_running_loop().time() - t0) * 10)
                levels[k] = max(levels.get(k, 0.0), float(np.sqrt(np.mean(x * x))))

        def subscribed(
            track: rtc.Track, _: rtc.RemoteTrackPublication, p: rtc.RemoteParticipant
        ) -> None:
            if track.kind == rtc.TrackKind.KIND_AUDIO:
                tasks.append(asyncio.create_task(read(p.identity, track)))

        room.on("track_subscribed", subscribed)
        token = livekit_server.token("listener", room=ROOM + "-turns", publish=False, hidden=True)
        await room.connect(livekit_server.url, token)
        pubs = LoadPublisher(
            livekit_server,
            ROOM + "-turns",
            2,
            media,
            turn_s=1.0,
            binary=loadpub_binary,
            log_path=tmp_path / "pub.log",
        )
        try:
            await asyncio.to_thread(pubs.start, DEADLINE_S)
            await wait_until_async(
                lambda: all(len(slots.get(p, {})) >= 60 for p in pubs.identities),
                DEADLINE_S,
                lambda: f"6 s of audio from each: {[len(v) for v in slots.values()]}",
            )
        finally:
            pubs.stop()
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await room.disconnect()

    asyncio.run(run())
    loud = {who: {k for k, rms in levels.items() if rms > 0.01} for who, levels in slots.items()}
    assert sorted(loud) == ["p00", "p01"] and all(len(v) >= 5 for v in loud.values()), loud
    both = loud["p00"] & loud["p01"]
    # A few slots at turn changes: the two started up to a few hundred ms apart.
    assert len(both) <= 0.25 * min(len(v) for v in loud.values()), (both, loud)
