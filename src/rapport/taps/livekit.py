"""The LiveKit bot: a hidden, subscribe-only participant that taps consenting participants' media.

It subscribes to a participant's camera or microphone only while the consent gate allows that
person and modality (identity = the consent's user id), so no one else's media ever leaves the
SFU. Video takes the LOW simulcast layer: it is asked for before subscribing, and larger frames that
still come first are dropped (the SFU forwards the layers it has until the publisher's LOW layer
starts, about a second). Only the newest frame waits, sampled at `video.sample_fps` (lower, per
participant, while the session is behind: rapport/sampling.py). Audio is resampled to 16 kHz
mono; final transcription segments and chat become utterances of their speaker.
Media time is seconds since the tap began, on this process's clock, so a rejoin after a server
restart or a network cut continues the same timeline. `forget` erases a person from the counters.

SDK constraints (livekit 1.2.x): event handlers must be plain functions (async work goes in tasks);
a task iterating a VideoStream never ends after `aclose()`, so it is cancelled; only I420 converts
to RGB (converting ABGR aborts the process), so frames go through I420 first.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

import cv2
import numpy as np
from livekit import rtc

from rapport.config import Settings
from rapport.consent.gate import ConsentGate
from rapport.frames import SAMPLE_RATE, AudioChunk, Utterance, VideoFrame
from rapport.live import EndStream, LiveItem, Tick
from rapport.sampling import Pacer
from rapport.taps import own_events
from rapport.taps.own_events import own_events_only

log = logging.getLogger(__name__)

TRANSCRIPTION_TOPIC = "lk.transcription"
CHAT_TOPIC = "lk.chat"
RESYNC_S = 0.5
"""Audio arriving this far behind its sample clock (a gap: mute, a network cut) is re-anchored."""
SEGMENTS_KEPT = 1024
"""Segment ids remembered to drop the second copy of a transcript (it follows within seconds)."""
REVIEW_S = 1.0
"""Subscriptions are re-checked this often (consents expire); grants and revocations act at once."""
LOW_SIDE = 180
"""Short side of the LOW layer of the SDKs' default simulcast (JS and Rust: 180p) for cameras whose
long side is 960 px or more; below that a LOW layer may be full size."""
LAYER_WAIT_S = 5.0
"""Frames above the LOW layer are dropped this long at most: a publisher with its own layers may
have a larger LOW layer, and its frames are then taken as they come."""

ENDING = {
    rtc.DisconnectReason.ROOM_DELETED,
    rtc.DisconnectReason.ROOM_CLOSED,
    rtc.DisconnectReason.PARTICIPANT_REMOVED,
    rtc.DisconnectReason.DUPLICATE_IDENTITY,
    rtc.DisconnectReason.CLIENT_INITIATED,
}
"""Disconnects after which the bot does not rejoin: the room is over, or someone took its place."""

_MODALITY = {rtc.TrackSource.SOURCE_CAMERA: "face", rtc.TrackSource.SOURCE_MICROPHONE: "voice"}
_KIND = {"face": "video", "voice": "audio"}


@dataclass(slots=True)
class TapStats:
    subscribed: set[str] = field(default_factory=set)
    """(identity/kind) tracks subscribed now."""
    ever_subscribed: set[str] = field(default_factory=set)
    video_frames: int = 0
    """Frames taken for the session (after sampling)."""
    video_frames_above_layer: int = 0
    """Frames dropped for being larger than the LOW layer asked for (before it came)."""
    video_frames_too_small: int = 0
    """Frames dropped for being too small to hold a face of faces.min_face_px (the 8x8 frames
    WebRTC decodes while a layer starts or stops)."""
    video_size: dict[str, tuple[int, int]] = field(default_factory=dict)
    """Last received (width, height) per participant, before downscaling."""
    video_largest_taken: tuple[int, int] = (0, 0)
    """Largest width and largest height of the frames taken, before downscaling."""
    audio_chunks: int = 0
    utterances: int = 0
    joins: int = 0
    """Times the bot joined the room (1 + rejoins)."""
    mutes: int = 0
    """Cameras and microphones seen turned off (muted)."""

    def counts(self) -> dict[str, object]:
        return {
            "joins": self.joins,
            "mutes": self.mutes,
            "subscribed": sorted(self.subscribed),
            "ever_subscribed": sorted(self.ever_subscribed),
            "video_frames": self.video_frames,
            "video_frames_above_layer": self.video_frames_above_layer,
            "video_frames_too_small": self.video_frames_too_small,
            "video_size": {k: list(v) for k, v in sorted(self.video_size.items())},
            "video_largest_taken": list(self.video_largest_taken),
            "audio_chunks": self.audio_chunks,
            "utterances": self.utterances,
        }

    def forget(self, identity: str) -> None:
        """Erasure: drop every counter keyed by `identity` (the totals stay)."""
        self.subscribed = {k for k in self.subscribed if k.rsplit("/", 1)[0] != identity}
        self.ever_subscribed = {k for k in self.ever_subscribed if k.rsplit("/", 1)[0] != identity}
        self.video_size.pop(identity, None)


class RoomTap:
    def __init__(
        self,
        *,
        url: str,
        token: Callable[[], str],
        gate: ConsentGate,
        put: Callable[[LiveItem], None],
        settings: Settings,
        clock: Callable[[], float] = time.monotonic,
        media_start: float = 0.0,
        sample_fps: Callable[[str], float] | None = None,
    ) -> None:
        """`token` mints a fresh join token (hidden, subscribe-only) for every (re)join;
        `media_start`: the media time now (a session resumed from another worker goes on from
        where its clock is, so windows keep their place on the session's timeline);
        `sample_fps`: a participant's camera rate now (rapport/sampling.py; default: as set)."""
        self._url = url
        self._token = token
        self._gate = gate
        self._put = put
        self._settings = settings
        fixed = settings.video.sample_fps
        self._sample_fps = sample_fps or (lambda _identity: fixed)
        self._clock = clock
        self._t0 = clock() - media_start
        self._room: rtc.Room | None = None
        self._readers: dict[str, asyncio.Task[None]] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._segments: OrderedDict[str, None] = OrderedDict()
        self._stopped = asyncio.Event()
        self._disconnected = asyncio.Event()
        self._ended = False
        self.stats = TapStats()
        gate.watch(self._consents_changed)

    @property
    def media_origin(self) -> datetime:
        """The wall-clock time of media time 0."""
        return datetime.fromtimestamp(time.time() - self.now(), UTC)

    def now(self) -> float:
        """Media time: seconds since the tap began (plus `media_start`)."""
        return self._clock() - self._t0

    async def run(self) -> str:
        """Join and tap the room until it ends ("room_ended"), `stop()` ("stopped"), or the server
        stays unreachable past `livekit.rejoin_s` ("lost")."""
        ticker = asyncio.create_task(self._tick())
        lost_since: float | None = None
        try:
            while not self._stopped.is_set():
                try:
                    await self._join()
                    lost_since = None
                except rtc.ConnectError as e:
                    log.warning("joining the room failed: %s", e)
                    lost_since = lost_since if lost_since is not None else self._clock()
                    if self._clock() - lost_since > self._settings.livekit.rejoin_s:
                        return "lost"
                    if await _wait(self._stopped, 1.0):
                        break
                    continue
                stop = asyncio.create_task(self._stopped.wait())
                gone = asyncio.create_task(self._disconnected.wait())
                await asyncio.wait({stop, gone}, return_when=asyncio.FIRST_COMPLETED)
                stop.cancel()
                gone.cancel()
                await self._leave()
                if self._ended:
                    return "room_ended"
                lost_since = self._clock()
            return "stopped"
        finally:
            ticker.cancel()
            await self._leave()

    def stop(self) -> None:
        self._stopped.set()

    def forget(self, identity: str) -> None:
        """Erasure: keep nothing about `identity`. Call it on the tap's event loop after their
        consent went (the gate has then unsubscribed them); what is still subscribed is dropped
        all the same, and subscribed again only if the gate allows it."""
        p = self._room.remote_participants.get(identity) if self._room is not None else None
        for pub in p.track_publications.values() if p is not None else ():
            if pub.subscribed:
                pub.set_subscribed(False)
        for kind in ("video", "audio"):
            self._end_reader(f"{identity}/{kind}")
        self.stats.forget(identity)

    # -- the room ---------------------------------------------------------------------------------

    async def _join(self) -> None:
        room = rtc.Room()
        self._disconnected.clear()
        room.on("participant_connected", self._review)
        room.on("participant_disconnected", self._left)
        room.on("track_published", lambda _pub, p: self._review(p))
        room.on("track_subscribed", self._subscribed)
        room.on("track_unsubscribed", self._unsubscribed)
        room.on("track_unpublished", lambda pub, p: self._stop_reader(p.identity, pub))
        room.on("track_muted", self._muted)
        room.on("transcription_received", self._transcription)
        room.on("disconnected", self._on_disconnected)
        room.register_text_stream_handler(TRANSCRIPTION_TOPIC, self._text_stream)
        room.register_text_stream_handler(CHAT_TOPIC, self._text_stream)
        await room.connect(self._url, self._token(), rtc.RoomOptions(auto_subscribe=False))
        self._room = room
        self.stats.joins += 1
        for p in room.remote_participants.values():
            self._review(p)

    async def _leave(self) -> None:
        for key in list(self._readers):
            self._end_reader(key)
        room, self._room = self._room, None
        if room is not None:
            await room.disconnect()

    def _on_disconnected(self, reason: rtc.DisconnectReason.ValueType) -> None:
        self._ended = reason in ENDING and not self._stopped.is_set()
        log.info("left the room: %s", rtc.DisconnectReason.Name(reason))
        self._disconnected.set()

    # -- consent decides subscriptions ----------------------------------------------------------

    def _consents_changed(self) -> None:
        if self._room is not None:
            for p in self._room.remote_participants.values():
                self._review(p)

    def _review(self, p: rtc.RemoteParticipant) -> None:
        for pub in p.track_publications.values():
            modality = _MODALITY.get(pub.source)
            if modality is None:
                continue
            wanted = self._gate.allows(p.identity, modality)
            if wanted and not pub.subscribed:
                if modality == "face" and pub.simulcasted:  # the SFU keeps it for the subscription
                    pub.set_video_quality(rtc.VideoQuality.VIDEO_QUALITY_LOW)
                pub.set_subscribed(True)
            elif not wanted and pub.subscribed:
                pub.set_subscribed(False)
                self._stop_reader(p.identity, pub)

    def _subscribed(
        self, track: rtc.Track, pub: rtc.RemoteTrackPublication, p: rtc.RemoteParticipant
    ) -> None:
        modality = _MODALITY.get(pub.source)
        if modality is None or not self._gate.allows(p.identity, modality):
            pub.set_subscribed(False)  # consent went while the subscription was on its way
            return
        key = f"{p.identity}/{_KIND[modality]}"
        self._end_reader(key)
        if modality == "face":
            layer = None  # one layer: taken as it comes, scaled down
            if pub.simulcasted:
                pub.set_video_quality(rtc.VideoQuality.VIDEO_QUALITY_LOW)
                layer = low_layer(pub.width, pub.height)
            reader = self._read_video(p.identity, track, LayerWait(layer))
        else:
            reader = self._read_audio(p.identity, track)
        self._readers[key] = asyncio.create_task(reader)
        self.stats.subscribed.add(key)
        self.stats.ever_subscribed.add(key)

    def _unsubscribed(
        self, _track: rtc.Track, pub: rtc.RemoteTrackPublication, p: rtc.RemoteParticipant
    ) -> None:
        self._stop_reader(p.identity, pub)

    def _muted(self, p: rtc.Participant, pub: rtc.TrackPublication) -> None:
        # The stream stops holding windows; its reader stays and drops what still arrives (the
        # SDK marks the track muted before this event) until the track is unmuted.
        kind = _KIND.get(_MODALITY.get(pub.source, ""))
        if isinstance(p, rtc.RemoteParticipant) and kind is not None:
            self.stats.mutes += 1
            self._put(EndStream(kind, p.identity))

    def _left(self, p: rtc.RemoteParticipant) -> None:
        for kind in ("video", "audio"):
            self._end_reader(f"{p.identity}/{kind}")

    def _stop_reader(self, identity: str, pub: rtc.TrackPublication) -> None:
        modality = _MODALITY.get(pub.source)
        if modality is not None:
            self._end_reader(f"{identity}/{_KIND[modality]}")

    def _end_reader(self, key: str) -> None:
        task = self._readers.pop(key, None)
        self.stats.subscribed.discard(key)
        if task is not None:
            task.cancel()
            identity, kind = key.rsplit("/", 1)
            self._put(EndStream(kind, identity))

    # -- media ------------------------------------------------------------------------------------

    async def _read_video(self, identity: str, track: rtc.Track, layer: LayerWait) -> None:
        stream = rtc.VideoStream(track, capacity=1)  # only the newest frame waits
        own_events_only(stream, own_events.VIDEO)
        pacer = Pacer()
        try:
            async for event in stream:
                if track.muted:  # in flight when the camera went off: its stream has ended
                    continue
                t = self.now()
                frame = event.frame
                self.stats.video_size[identity] = (frame.width, frame.height)
                if min(frame.width, frame.height) < self._settings.faces.min_face_px:
                    self.stats.video_frames_too_small += 1  # no face fits: no "no face" either
                    continue
                if not layer.admits(frame.width, frame.height, t):
                    self.stats.video_frames_above_layer += 1
                    continue
                fps = self._sample_fps(identity)  # lowered while the session is behind
                if not pacer.take(t, fps):
                    continue
                rgb = to_rgb(frame, self._settings.video.max_side)
                self.stats.video_frames += 1
                w, h = self.stats.video_largest_taken
                self.stats.video_largest_taken = (max(w, frame.width), max(h, frame.height))
                lowered = fps if fps < self._settings.video.sample_fps else None
                self._put(VideoFrame(identity, t, rgb, lowered))
        finally:
            # The close must not be awaited from a cancelled reader: it would hang.
            asyncio.get_running_loop().create_task(stream.aclose())

    async def _read_audio(self, identity: str, track: rtc.Track) -> None:
        # Frames of a whole chunk: a wake-up per 10 ms frame would cost 100 a second per stream
        # (and each stream sees every stream's frames unless own_events_only applied).
        chunk_ms = self._settings.livekit.audio_chunk_ms
        stream = rtc.AudioStream(
            track, sample_rate=SAMPLE_RATE, num_channels=1, frame_size_ms=chunk_ms
        )
        own_events_only(stream, own_events.AUDIO)
        chunk = SAMPLE_RATE * chunk_ms // 1000
        parts: list[np.ndarray] = []
        held = 0
        start = 0.0  # media time of the first held sample
        clock: float | None = None  # media time the next sample belongs to
        try:
            async for event in stream:
                if track.muted:
                    continue
                samples = np.frombuffer(event.frame.data, np.int16).astype(np.float32) / 32768.0
                arrived = self.now() - len(samples) / SAMPLE_RATE
                if clock is None or arrived - clock > RESYNC_S:
                    if held:  # a gap: what was held goes out before the jump
                        self._put(AudioChunk(identity, start, np.concatenate(parts)))
                        parts, held = [], 0
                    clock = max(arrived, clock or 0.0)
                if not held:
                    start = clock
                parts.append(samples)
                held += len(samples)
                clock += len(samples) / SAMPLE_RATE
                if held >= chunk:
                    self._put(AudioChunk(identity, start, np.concatenate(parts)))
                    self.stats.audio_chunks += 1
                    parts, held = [], 0
        finally:
            asyncio.get_running_loop().create_task(stream.aclose())

    # -- text -------------------------------------------------------------------------------------

    def _transcription(
        self,
        segments: list[rtc.TranscriptionSegment],
        p: rtc.Participant | None,
        _pub: rtc.TrackPublication | None,
    ) -> None:
        if p is None:
            return
        for s in segments:
            if s.final:
                self._utterance(p.identity, s.text, s.id)

    def _text_stream(self, reader: rtc.TextStreamReader, sender: str) -> None:
        task = asyncio.create_task(self._read_text(reader, sender))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _read_text(self, reader: rtc.TextStreamReader, sender: str) -> None:
        try:
            text = await reader.read_all()
        except rtc.StreamError as e:  # the sender left mid-stream: the segment never finished
            log.debug("text stream %s dropped: %s", reader.info.stream_id, e)
            return
        attrs = reader.info.attributes or {}
        if reader.info.topic == TRANSCRIPTION_TOPIC:
            if attrs.get("lk.transcription_final", "true") != "true":
                return
            speaker = self._track_owner(attrs.get("lk.transcribed_track_id")) or sender
            self._utterance(speaker, text, attrs.get("lk.segment_id") or reader.info.stream_id)
        else:
            self._utterance(sender, text, reader.info.stream_id)

    def _track_owner(self, track_sid: str | None) -> str | None:
        if self._room is None or not track_sid:
            return None
        for p in self._room.remote_participants.values():
            if track_sid in p.track_publications:
                return p.identity
        return None

    def _utterance(self, identity: str, text: str, segment_id: str) -> None:
        # A voice agent sends a segment both as a transcription event and as a text stream.
        if not text.strip() or segment_id in self._segments:
            return
        self._segments[segment_id] = None
        if len(self._segments) > SEGMENTS_KEPT:
            self._segments.popitem(last=False)
        t = self.now()
        self.stats.utterances += 1
        self._put(Utterance(identity, t, t, text.strip()))

    # -- clock ------------------------------------------------------------------------------------

    async def _tick(self) -> None:
        review = 0.0
        while True:
            await asyncio.sleep(self._settings.livekit.tick_s)
            t = self.now()
            self._put(Tick(t))
            if t - review >= REVIEW_S:
                review = t
                self._consents_changed()  # consents expire without a call


def low_layer(width: int, height: int) -> tuple[int, int] | None:
    """The largest the LOW layer of a simulcast camera of this size is by the SDKs' defaults, or
    None where it may be the full size (or the size is unknown)."""
    short = min(width, height)
    if max(width, height) < 960 or short <= LOW_SIDE:
        return None
    scale = short / LOW_SIDE
    return math.ceil(width / scale), math.ceil(height / scale)


class LayerWait:
    """Admits a camera's frames once one within `layer` (width, height) arrives; drops larger ones
    before that, for at most LAYER_WAIT_S from the first. `layer=None` admits everything."""

    def __init__(self, layer: tuple[int, int] | None) -> None:
        self._layer = layer
        self._since: float | None = None

    def admits(self, width: int, height: int, t: float) -> bool:
        if self._layer is None:
            return True
        if width <= self._layer[0] and height <= self._layer[1]:
            self._layer = None  # the layer arrived
            return True
        self._since = t if self._since is None else self._since
        if t - self._since < LAYER_WAIT_S:
            return False
        log.warning("the LOW simulcast layer did not come: frames are taken as they come")
        self._layer = None
        return True


def to_rgb(frame: rtc.VideoFrame, max_side: int) -> np.ndarray:
    """RGB uint8, downscaled so no side exceeds `max_side` (any simulcast layer, or none)."""
    if frame.type != rtc.VideoBufferType.I420:
        frame = frame.convert(rtc.VideoBufferType.I420)
    rgb = frame.convert(rtc.VideoBufferType.RGB24)
    image = np.frombuffer(rgb.data, np.uint8).reshape(rgb.height, rgb.width, 3)
    scale = max_side / max(rgb.width, rgb.height)
    if scale < 1:
        size = (max(1, round(rgb.width * scale)), max(1, round(rgb.height * scale)))
        return cv2.resize(image, size, interpolation=cv2.INTER_AREA)
    return image.copy()


async def _wait(event: asyncio.Event, timeout: float) -> bool:
    try:
        await asyncio.wait_for(event.wait(), timeout)
        return True
    except TimeoutError:
        return False
