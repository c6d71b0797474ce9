"""The bot's parts that need no server: frames as the LiveKit SDK hands them over (any buffer type,
through I420, to RGB), the LOW layer wait, the sampling rate of the moment, and erasure from its
counters."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from types import SimpleNamespace

import cv2
import numpy as np
import pytest
from livekit import rtc

from rapport.config import Settings
from rapport.consent.gate import ConsentGate, Grant
from rapport.frames import VideoFrame
from rapport.live import EndStream, LiveItem
from rapport.taps.livekit import LAYER_WAIT_S, LayerWait, RoomTap, TapStats, low_layer, to_rgb


def _image(w: int, h: int) -> np.ndarray:
    y, x = np.mgrid[0:h, 0:w]
    return np.stack([x * 255 // w, y * 255 // h, np.full_like(x, 128)], -1).astype(np.uint8)


def test_i420_frames_convert_to_rgb_and_downscale() -> None:
    rgb = _image(320, 180)
    i420 = cv2.cvtColor(rgb, cv2.COLOR_RGB2YUV_I420)
    frame = rtc.VideoFrame(320, 180, rtc.VideoBufferType.I420, i420.tobytes())
    out = to_rgb(frame, max_side=640)
    assert out.shape == (180, 320, 3) and out.dtype == np.uint8
    assert np.abs(out.astype(int) - rgb.astype(int)).mean() < 4  # chroma subsampling only
    small = to_rgb(frame, max_side=160)
    assert small.shape == (90, 160, 3)


def test_rgba_frames_go_through_i420_first() -> None:
    rgb = _image(64, 48)
    rgba = np.concatenate([rgb, np.full((48, 64, 1), 255, np.uint8)], -1)
    frame = rtc.VideoFrame(64, 48, rtc.VideoBufferType.RGBA, rgba.tobytes())
    out = to_rgb(frame, max_side=640)
    assert out.shape == (48, 64, 3)
    assert np.abs(out.astype(int) - rgb.astype(int)).mean() < 6


def test_the_low_layer_of_a_default_simulcast_camera() -> None:
    assert low_layer(1280, 720) == (320, 180)
    assert low_layer(1920, 1080) == (320, 180)
    assert low_layer(720, 1280) == (180, 320)  # portrait
    assert low_layer(960, 720) == (240, 180)  # 4:3
    assert low_layer(640, 360) is None  # the Rust SDK's LOW layer is then full size
    assert low_layer(0, 0) is None  # size unknown


def test_frames_above_the_layer_wait_until_it_comes_or_for_a_bounded_time() -> None:
    wait = LayerWait((320, 180))
    assert not wait.admits(1280, 720, 0.0)
    assert not wait.admits(640, 360, 0.5)
    assert wait.admits(320, 180, 0.9)
    assert wait.admits(1280, 720, 1.0)  # the layer came: no more filtering
    late = LayerWait((320, 180))  # a publisher whose own LOW layer is larger
    assert not late.admits(640, 360, 10.0)
    assert not late.admits(640, 360, 10.0 + LAYER_WAIT_S - 0.1)
    assert late.admits(640, 360, 10.0 + LAYER_WAIT_S)
    assert LayerWait(None).admits(1280, 720, 0.0)


def _stats_of(*people: str) -> TapStats:
    stats = TapStats(video_frames=7, video_frames_above_layer=2, utterances=3, joins=1)
    for who in people:
        stats.subscribed |= {f"{who}/video", f"{who}/audio"}
        stats.ever_subscribed |= {f"{who}/video", f"{who}/audio"}
        stats.video_size[who] = (320, 180)
    return stats


def test_tap_stats_forget_a_person_and_keep_the_rest() -> None:
    stats = _stats_of("alice", "alice/2", "bob")  # "/" in an identity is no separator
    stats.forget("alice")
    counts = stats.counts()
    assert counts["subscribed"] == counts["ever_subscribed"]
    assert counts["subscribed"] == ["alice/2/audio", "alice/2/video", "bob/audio", "bob/video"]
    assert counts["video_size"] == {"alice/2": [320, 180], "bob": [320, 180]}
    assert (counts["video_frames"], counts["utterances"]) == (7, 3)


def test_the_bot_forgets_an_erased_person_and_ends_their_readers() -> None:
    put: list[LiveItem] = []

    async def forget() -> None:
        tap = RoomTap(
            url="ws://127.0.0.1:1",
            token=lambda: "",
            gate=ConsentGate(),
            put=put.append,
            settings=Settings(),
        )
        tap.stats = _stats_of("alice", "bob")
        reader = asyncio.create_task(asyncio.Event().wait())
        tap._readers["alice/video"] = reader  # a reader still running, as if just subscribed
        tap.forget("alice")
        await asyncio.sleep(0)  # let the cancellation land
        assert reader.cancelled()
        counts = tap.stats.counts()
        assert "alice" not in str(counts)
        assert counts["ever_subscribed"] == ["bob/audio", "bob/video"]

    asyncio.run(forget())
    assert put == [EndStream("video", "alice")]


class _Publication:
    """Records what the bot asks of a camera publication (the SDK's RemoteTrackPublication)."""

    source = rtc.TrackSource.SOURCE_CAMERA
    simulcasted = True
    subscribed = False

    def __init__(self) -> None:
        self.calls: list[str] = []

    def set_video_quality(self, quality: int) -> None:
        self.calls.append(f"quality {rtc.VideoQuality.Name(quality)}")

    def set_subscribed(self, subscribed: bool) -> None:
        self.calls.append(f"subscribed {subscribed}")


def test_the_low_layer_is_asked_for_before_subscribing() -> None:
    gate = ConsentGate()
    gate.grant(Grant("cns_1", "alice", frozenset({"face"}), time.time() + 3600))
    tap = RoomTap(url="", token=lambda: "", gate=gate, put=print, settings=Settings())
    camera = _Publication()
    alice = SimpleNamespace(identity="alice", track_publications={"TR_1": camera})
    tap._review(alice)  # type: ignore[arg-type]
    assert camera.calls == ["quality VIDEO_QUALITY_LOW", "subscribed True"]


def test_the_bot_samples_each_camera_at_the_rate_of_the_moment_and_says_when_lowered(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """30 fps arriving for 2 s; the rate is 4 fps, then 1 fps from 1 s (as a sampler lowers it);
    frames too small to hold a face are skipped before sampling."""
    now = [0.0]
    i420 = cv2.cvtColor(_image(64, 36), cv2.COLOR_RGB2YUV_I420).tobytes()
    tiny = cv2.cvtColor(_image(8, 8), cv2.COLOR_RGB2YUV_I420).tobytes()

    class Stream:
        def __init__(self, track: object, capacity: int) -> None:
            pass

        async def __aiter__(self) -> AsyncIterator[SimpleNamespace]:
            for k in range(60):
                now[0] = k / 30
                if k % 20 == 0:  # WebRTC's 8x8 frames (a layer starting): no face fits, skipped
                    yield SimpleNamespace(
                        frame=rtc.VideoFrame(8, 8, rtc.VideoBufferType.I420, tiny)
                    )
                yield SimpleNamespace(frame=rtc.VideoFrame(64, 36, rtc.VideoBufferType.I420, i420))

        async def aclose(self) -> None:
            pass

    monkeypatch.setattr(rtc, "VideoStream", Stream)
    put: list[LiveItem] = []
    tap = RoomTap(
        url="",
        token=lambda: "",
        gate=ConsentGate(),
        put=put.append,
        settings=Settings(),
        clock=lambda: now[0],
        sample_fps=lambda who: 4.0 if now[0] < 1 else 1.0,
    )
    track = SimpleNamespace(muted=False)
    asyncio.run(tap._read_video("alice", track, LayerWait(None)))  # type: ignore[arg-type]
    frames = [i for i in put if isinstance(i, VideoFrame)]
    assert [f.sample_fps for f in frames if f.t < 1] == [None] * 4  # as configured: no note
    assert [f.sample_fps for f in frames if f.t >= 1] == [1.0]
    assert tap.stats.video_frames == 5 and tap.stats.video_frames_too_small == 3
    assert {f.rgb.shape for f in frames} == {(36, 64, 3)}
