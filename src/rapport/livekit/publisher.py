"""A simulated call participant: publishes a sample recording into a LiveKit room in real time.

Camera (simulcast, at the recording's size), microphone (48 kHz mono, 10 ms frames), the
recording's transcript as a voice agent publishes it, and chat. Each pushed video frame carries
its index and capture wall time as frame metadata (FMF_FRAME_ID, FMF_USER_TIMESTAMP in us), and
`captured[i]` is that time.time() too, for latency benchmarks.

Simulcast layers are the SDK's choice: at 1280x720 they are 320x180 (LOW), 640x360 and 1280x720;
at 640x360 (livekit 1.2.0) LOW is also 640x360, so record at 1280x720 to see a smaller LOW layer.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Coroutine, Iterator
from pathlib import Path
from types import TracebackType
from typing import Any, Literal

import av
import numpy as np
from livekit import rtc
from numpy.typing import NDArray

from rapport.frames import Utterance
from rapport.samples import Recording
from rapport.taps.transcript import load_transcript

AUDIO_RATE = 48_000
_AUDIO_FRAME = AUDIO_RATE // 100  # 10 ms
TranscriptionMode = Literal["segments", "text", "both"]
"""How cues are published: `publish_transcription` segments, "lk.transcription" text streams, or
both (same segment id in each, so a reader can drop the duplicate)."""
TRANSCRIPTION_TOPIC = "lk.transcription"
CHAT_TOPIC = "lk.chat"


class SimulatedParticipant:
    """Joins `url` with `token` and plays `recording` into the room.

    `recording` is a Recording, or a media file with an optional WebVTT transcript beside it
    (same stem, .vtt). With `loop=False`, `finished` is set when the recording has played once.
    Each cue is published when it ends (as a final segment), timed from the start of playback.

    The server forwards `publish_transcription` segments only from agents, so, as with a real
    voice agent, pass `transcriber_token` (an agent token: LocalServer.token(..., agent=True)) to
    have a second connection publish the transcript on this participant's behalf. Without it the
    participant sends its own; then only the "lk.transcription" text streams arrive.

    Create it inside the running event loop (rtc.Room binds to the current loop).
    """

    def __init__(
        self,
        url: str,
        token: str,
        recording: Recording | Path,
        *,
        loop: bool = False,
        transcription: TranscriptionMode = "both",
        max_bitrate: int | None = None,
        on_frame: Callable[[int, float], None] | None = None,
        transcriber_token: str | None = None,
    ) -> None:
        self.url, self.token = url, token
        if isinstance(recording, Recording):
            self.path, transcript = recording.path, recording.transcript
        else:
            self.path, transcript = recording, recording.with_suffix(".vtt")
        self.transcript = transcript if transcript is not None and transcript.is_file() else None
        self.loop, self.mode, self.on_frame = loop, transcription, on_frame
        self.room = rtc.Room()
        self.transcriber_token = transcriber_token
        self.transcriber: rtc.Room | None = None
        self.captured: list[float] = []
        """time.time() at capture of each pushed video frame; the index is the frame id."""
        self.finished = asyncio.Event()
        self.error: BaseException | None = None
        """What stopped playback early, if anything did (set with `finished`)."""
        self.camera_sid = self.mic_sid = ""
        self._info = _probe(self.path)
        self._max_bitrate = max_bitrate
        self._camera_on = True
        self._video: rtc.VideoSource | None = None
        self._audio: rtc.AudioSource | None = None
        self._tasks: list[asyncio.Task[None]] = []

    @property
    def identity(self) -> str:
        return self.room.local_participant.identity

    @property
    def size(self) -> tuple[int, int]:
        """(width, height) published."""
        return self._info.width, self._info.height

    async def start(self) -> SimulatedParticipant:
        try:
            await self._start()
        except BaseException:
            await self.stop()
            raise
        return self

    async def _start(self) -> None:
        await self.room.connect(self.url, self.token, rtc.RoomOptions(auto_subscribe=False))
        if self.transcriber_token:
            self.transcriber = rtc.Room()
            options = rtc.RoomOptions(auto_subscribe=False)
            await self.transcriber.connect(self.url, self.transcriber_token, options)
        info = self._info
        if info.width:
            self._video = rtc.VideoSource(info.width, info.height)
            await self._publish_camera()
        audio = await asyncio.to_thread(_decode_audio, self.path) if info.has_audio else None
        if audio is not None:
            self._audio = rtc.AudioSource(AUDIO_RATE, 1, queue_size_ms=200)
            track = rtc.LocalAudioTrack.create_audio_track("microphone", self._audio)
            opts = rtc.TrackPublishOptions(source=rtc.TrackSource.SOURCE_MICROPHONE)
            self.mic_sid = (await self.room.local_participant.publish_track(track, opts)).sid
        cues = (
            load_transcript(self.transcript, default_participant=self.identity)
            if self.transcript
            else []
        )
        t0 = asyncio.get_running_loop().time()
        jobs: list[Coroutine[Any, Any, None]] = []
        if self._video is not None:
            jobs.append(self._play_video(t0))
        if audio is not None:
            jobs.append(self._play_audio(t0, audio))
        if cues:
            jobs.append(self._play_cues(t0, cues))
        self._tasks = [asyncio.create_task(job) for job in jobs]
        asyncio.gather(*self._tasks).add_done_callback(self._ended)

    def _ended(self, done: asyncio.Future[list[None]]) -> None:
        if not done.cancelled() and done.exception() is not None:
            self.error = done.exception()
        self.finished.set()

    async def _publish_camera(self) -> None:
        assert self._video is not None
        track = rtc.LocalVideoTrack.create_video_track("camera", self._video)
        bitrate = self._max_bitrate or (2_000_000 if self._info.width > 960 else 800_000)
        opts = rtc.TrackPublishOptions(
            source=rtc.TrackSource.SOURCE_CAMERA,
            simulcast=True,
            video_encoding=rtc.VideoEncoding(max_bitrate=bitrate, max_framerate=self._info.fps),
            frame_metadata_features=[
                rtc.FrameMetadataFeature.FMF_FRAME_ID,
                rtc.FrameMetadataFeature.FMF_USER_TIMESTAMP,
            ],
        )
        self.camera_sid = (await self.room.local_participant.publish_track(track, opts)).sid

    def _laps(self) -> Iterator[int]:
        lap = 0
        while True:
            yield lap
            lap += 1
            if not self.loop:
                return

    async def _play_video(self, t0: float) -> None:
        loop, period = asyncio.get_running_loop(), self._info.duration
        for lap in self._laps():
            frames = _video_frames(self.path)
            while (item := await asyncio.to_thread(next, frames, None)) is not None:
                t, width, height, i420 = item
                await _sleep_until(loop, t0 + lap * period + t)
                if not self._camera_on or self._video is None:
                    continue
                now, frame_id = time.time(), len(self.captured)
                meta = rtc.FrameMetadata(user_timestamp=int(now * 1e6), frame_id=frame_id)
                frame = rtc.VideoFrame(width, height, rtc.VideoBufferType.I420, i420)
                self._video.capture_frame(frame, metadata=meta)
                self.captured.append(now)
                if self.on_frame is not None:
                    self.on_frame(frame_id, now)

    async def _play_audio(self, t0: float, pcm: NDArray[np.int16]) -> None:
        assert self._audio is not None
        loop, period = asyncio.get_running_loop(), self._info.duration
        for lap in self._laps():
            for k, start in enumerate(range(0, len(pcm) - _AUDIO_FRAME + 1, _AUDIO_FRAME)):
                await _sleep_until(loop, t0 + lap * period + k / 100)
                piece = pcm[start : start + _AUDIO_FRAME]
                await self._audio.capture_frame(
                    rtc.AudioFrame(piece.tobytes(), AUDIO_RATE, 1, _AUDIO_FRAME)
                )

    async def _play_cues(self, t0: float, cues: list[Utterance]) -> None:
        loop, period = asyncio.get_running_loop(), self._info.duration
        for lap in self._laps():
            for n, cue in enumerate(cues):
                offset = lap * period
                await _sleep_until(loop, t0 + offset + cue.end)
                await self.say(
                    cue.text, start=offset + cue.start, end=offset + cue.end, seg_id=f"{lap}-{n}"
                )

    async def say(self, text: str, *, start: float, end: float, seg_id: str) -> None:
        """Publish one final transcript segment of this participant's microphone."""
        me, seg_id = self.identity, f"{self.identity}-{seg_id}"
        sender = (self.transcriber or self.room).local_participant
        if self.mode in ("segments", "both"):
            seg = rtc.TranscriptionSegment(
                id=seg_id,
                text=text,
                start_time=int(start * 1000),
                end_time=int(end * 1000),
                language="en",
                final=True,
            )
            await sender.publish_transcription(
                rtc.Transcription(participant_identity=me, track_sid=self.mic_sid, segments=[seg])
            )
        if self.mode in ("text", "both"):
            attributes = {
                "lk.transcribed_track_id": self.mic_sid,
                "lk.segment_id": seg_id,
                "lk.transcription_final": "true",
            }
            writer = await sender.stream_text(
                topic=TRANSCRIPTION_TOPIC, attributes=attributes, sender_identity=me
            )
            await writer.write(text)
            await writer.aclose()

    async def chat(self, text: str) -> None:
        await self.room.local_participant.send_text(text, topic=CHAT_TOPIC)

    async def camera(self, on: bool, *, unpublish: bool = False) -> None:
        """Turn the camera off or on: mute/unmute the track, or unpublish/republish it."""
        pub = self.room.local_participant.track_publications.get(self.camera_sid)
        if on == self._camera_on:
            return
        self._camera_on = on
        if unpublish:
            if not on and pub is not None:
                await self.room.local_participant.unpublish_track(self.camera_sid)
            elif on:
                await self._publish_camera()
        elif pub is not None and isinstance(pub.track, rtc.LocalVideoTrack):
            if on:
                pub.track.unmute()
            else:
                pub.track.mute()

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []
        await self.room.disconnect()
        if self.transcriber is not None:
            await self.transcriber.disconnect()
            self.transcriber = None
        for source in (self._video, self._audio):
            if source is not None:
                await source.aclose()
        self._video = self._audio = None

    async def __aenter__(self) -> SimulatedParticipant:
        return await self.start()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()


async def _sleep_until(loop: asyncio.AbstractEventLoop, when: float) -> None:
    delay = when - loop.time()
    if delay > 0:
        await asyncio.sleep(delay)


class _Info:
    def __init__(self, width: int, height: int, fps: float, duration: float, has_audio: bool):
        self.width, self.height, self.fps = width, height, fps
        self.duration, self.has_audio = duration, has_audio


def _probe(path: Path) -> _Info:
    """Size, frame rate, duration (the loop period) and whether there is audio."""
    with av.open(str(path)) as c:
        v = c.streams.video[0] if c.streams.video else None
        duration = c.duration / 1e6 if c.duration else 0.0
        if v is None:
            return _Info(0, 0, 0.0, duration, bool(c.streams.audio))
        fps = float(v.average_rate or v.guessed_rate or 25)
        return _Info(v.width, v.height, fps, duration, bool(c.streams.audio))


def _video_frames(path: Path) -> Iterator[tuple[float, int, int, bytes]]:
    """(media time, width, height, I420 bytes) per decoded frame."""
    with av.open(str(path)) as c:
        stream = c.streams.video[0]
        stream.thread_type = "AUTO"
        t0: float | None = None
        for frame in c.decode(stream):
            t = frame.time or 0.0
            t0 = t if t0 is None else t0
            yuv = frame.reformat(format="yuv420p") if frame.format.name != "yuv420p" else frame
            data = np.ascontiguousarray(yuv.to_ndarray()).tobytes()
            yield t - t0, frame.width, frame.height, data


def _decode_audio(path: Path) -> NDArray[np.int16]:
    """The whole audio track as 48 kHz mono int16."""
    resampler = av.AudioResampler(format="s16", layout="mono", rate=AUDIO_RATE)
    with av.open(str(path)) as c:
        frames = [*c.decode(c.streams.audio[0]), None]
        out = [f for frame in frames for f in resampler.resample(frame)]
    parts = [np.asarray(f.to_ndarray(), np.int16).reshape(-1) for f in out]
    return np.concatenate(parts) if parts else np.zeros(0, np.int16)
