"""One analysis session: media items in (any tap), aggregate events out.

Data flows one way: tap -> heads (faces, voice, language) -> per-face smoothing -> windows (late
fusion, engagement) -> events. The session never reaches back into a tap.

A window closes when every input is final up to its end: the last video frame, and the audio up to
the start of any speech segment still open in the VAD (its turn, speaking time, prosody and
transcription all land in the window where it began). Segments are cut at the window length, so
speech delays a window by at most one window.
"""

from __future__ import annotations

from collections import deque

import numpy as np
from numpy.typing import NDArray

from rapport.analytics.payloads import Pseudonyms, Reporting, engagement_window, turns_window
from rapport.analytics.shifts import SentimentShiftDetector
from rapport.analytics.summary import SummaryBuilder
from rapport.analytics.windows import WindowAggregator, WindowResult, slope_per_minute
from rapport.config import Settings
from rapport.consent.gate import ConsentGate
from rapport.events.bus import EventBus
from rapport.events.schema import Event, EventType, SentimentShiftData, SessionStartedData
from rapport.frames import SAMPLE_RATE, AudioChunk, SpeechSegment, Utterance, VideoFrame
from rapport.pack import OfflinePack
from rapport.perception import prosody
from rapport.perception.face_stream import FaceStream
from rapport.speakers import SpeakerAttribution

ROOM_STREAM = "room"
"""Stream name of a shared room camera/microphone that belongs to no one participant."""

AUDIO_MEMORY_S = 30.0
"""Audio kept in memory for the segment being closed (prosody, speech-to-text); never stored."""

STALE_S = 2.0
"""A stream this far behind the others (it ended, or a camera went off) stops holding windows."""


class Session:
    def __init__(
        self,
        *,
        settings: Settings,
        pack: OfflinePack,
        bus: EventBus,
        owner: str | None,
        speakers: tuple[str, ...] = (),
        reporting: Reporting = "participant",
        transcribe: bool = False,
        duration_s: float | None = None,
        gate: ConsentGate | None = None,
    ) -> None:
        """`owner` is the person the media belongs to (None for a shared room camera and mic);
        `speakers`, when the transcript names two or more, takes voice attribution from it;
        `duration_s`, when known (a recording), lets a short tail join the last window;
        `gate`, when given, admits every item before any model sees it (the service always
        gives one; the local `rapport analyze` of one's own recording does not)."""
        self._settings = settings
        self._pack = pack
        self._bus = bus
        self._owner = owner
        self._reporting: Reporting = reporting
        self._windows = WindowAggregator(settings, duration_s)
        self._names = Pseudonyms()
        # Behind a gate, a person joins the windows with their first admitted item, so no one
        # without consent is ever reported, not even as silent.
        for p in sorted({*speakers, *([owner] if owner else [])}):
            if gate is None:
                self._windows.register(p)
            self._names(p)
        self._summary = SummaryBuilder(reporting, self._names)
        self._shifts = SentimentShiftDetector(settings.window.sentiment_shift_delta)
        self._trend: deque[tuple[float, float]] = deque(maxlen=settings.window.trend_windows)
        self._faces: dict[str, FaceStream] = {}
        self._speakers = SpeakerAttribution(owner, speakers)
        self._gate = gate
        self._audio_stream = owner or ROOM_STREAM
        # A shared mic's prosody is scored per attributed speaker, against their own baseline.
        self._vad = pack.voice_activity(
            self._audio_stream,
            max_speech_s=settings.window.seconds,
            prosody=not self._speakers.multi,
        )
        self._baselines: dict[str, prosody.ArousalBaseline] = {}
        self._audio: deque[AudioChunk] = deque()
        self._stt = pack.speech_to_text() if transcribe else None
        # (progress, watermark) per stream: how far it has arrived, and up to where it is final.
        self._video_t: tuple[float, float] | None = None
        self._audio_t: tuple[float, float] | None = None
        self.counts: dict[str, int] = {"frames": 0, "faces": 0, "speech_segments": 0, "texts": 0}

    def start(self, *, source: str, modalities: list[str]) -> None:
        self._bus.emit(
            EventType.SESSION_STARTED,
            0.0,
            0.0,
            SessionStartedData(
                source="livekit" if source == "livekit" else "recording",
                modalities=modalities,
                window_s=self._settings.window.seconds,
                sample_fps=self._settings.video.sample_fps,
                reporting=self._reporting,
            ),
        )

    @property
    def media_time(self) -> float:
        """How far the media has arrived, in seconds."""
        return max((s[0] for s in (self._video_t, self._audio_t) if s is not None), default=0.0)

    # -- inputs ---------------------------------------------------------------------------------

    def push_video(self, frame: VideoFrame) -> None:
        if not self._admit(frame.participant, "face"):
            t = frame.t + 1.0 / self._settings.video.sample_fps
            self._video_t = (t, t)
            self._advance()
            return
        stream = self._faces.get(frame.participant)
        if stream is None:
            stream = self._faces[frame.participant] = FaceStream(
                self._pack.detector,
                self._pack.expressions,
                self._settings.faces,
                self._settings.smoothing,
                self._owner,
            )
        summary = stream.process(frame)
        self.counts["frames"] += 1
        self.counts["faces"] += summary.faces
        self._windows.add_frame(summary)
        t = frame.t + 1.0 / self._settings.video.sample_fps
        self._video_t = (t, t)
        self._advance()

    def push_audio(self, chunk: AudioChunk) -> None:
        if not self._admit(chunk.participant, "voice"):
            self._audio_t = (chunk.end, chunk.end)
            self._advance()
            return
        self._remember(chunk)
        for segment in self._vad.push(chunk):
            self._on_speech(segment)
        pending = self._vad.pending_since
        self._audio_t = (chunk.end, chunk.end if pending is None else min(chunk.end, pending))
        self._advance()

    def push_utterance(self, utterance: Utterance) -> None:
        if not self._admit(utterance.participant, "text"):
            return
        self._speakers.add(utterance)
        self._windows.add_text(self._pack.text.score(utterance))
        self.counts["texts"] += 1

    # -- end --------------------------------------------------------------------------------------

    def finish(self, duration_s: float) -> Event:
        for segment in self._vad.flush():
            self._on_speech(segment)
        for result in self._windows.flush(duration_s):
            self._emit_window(result)
        dropped = {
            "late_items": self._windows.late,
            "faces_dropped_by_engine": sum(s.dropped for s in self._faces.values()),
        }
        if self._gate is not None:
            gate_dropped = self._gate.counts()["dropped"]
            assert isinstance(gate_dropped, dict)
            dropped.update(gate_dropped)
        summary = self._summary.build(duration_s, dropped)
        event = self._bus.emit(EventType.SESSION_SUMMARY, 0.0, duration_s, summary)
        self._audio.clear()
        self._faces.clear()
        self._baselines.clear()
        return event

    # -- consent ----------------------------------------------------------------------------------

    def _admit(self, stream: str, modality: str) -> bool:
        if self._gate is None:
            return True
        for person in self._gate.take_purges():
            self.forget(person)
        if not self._gate.admit(stream, modality):
            return False
        if stream != ROOM_STREAM:
            self._windows.register(stream)
        return True

    def forget(self, person: str) -> None:
        """Purge everything held in memory about `person` (consent revoked). Streams they are part
        of lose their state too: a shared camera's tracks, a shared microphone's open speech."""
        assert self._gate is not None
        for stream in [s for s in self._faces if person in self._gate.stream_people(s)]:
            del self._faces[stream]
        if person in self._gate.stream_people(self._audio_stream):
            self._vad.reset()
            self._audio.clear()
        self._baselines.pop(person, None)
        self._speakers.forget(person)
        self._windows.forget(person)
        self._summary.forget(person)

    # -- internals --------------------------------------------------------------------------------

    def _remember(self, chunk: AudioChunk) -> None:
        self._audio.append(chunk)
        while self._audio and chunk.end - self._audio[0].end > AUDIO_MEMORY_S:
            self._audio.popleft()

    def _samples(self, start: float, end: float) -> NDArray[np.float32]:
        parts = []
        for c in self._audio:
            if c.end <= start or c.t >= end:
                continue
            lo = max(0, round((start - c.t) * SAMPLE_RATE))
            hi = min(len(c.samples), round((end - c.t) * SAMPLE_RATE))
            parts.append(c.samples[lo:hi])
        return np.concatenate(parts) if parts else np.zeros(0, np.float32)

    def _on_speech(self, segment: SpeechSegment) -> None:
        self.counts["speech_segments"] += 1
        for who, start, end in self._speakers.split(segment.start, segment.end):
            if who is None:
                self._windows.add_room_speech(start, end)
                continue
            arousal, confidence = segment.arousal, segment.confidence
            valence = None
            if self._pack.voice_emotion is not None:
                scored = self._pack.voice_emotion.score(self._samples(start, end))
                valence, arousal, confidence = scored if scored else (None, None, 0.0)
            elif self._speakers.multi:
                arousal, confidence = self._speaker_arousal(who, start, end)
            self._windows.add_speech(
                SpeechSegment(who, start, end, arousal, confidence, valence)
            )
        if self._stt is not None:
            samples = self._samples(segment.start, segment.end)
            utterance = self._stt.transcribe(segment.participant, segment.start, samples)
            if utterance is not None:
                self.push_utterance(utterance)

    def _speaker_arousal(self, who: str, start: float, end: float) -> tuple[float | None, float]:
        features = prosody.measure(self._samples(start, end))
        if features is None:
            return None, 0.0
        return self._baselines.setdefault(who, prosody.ArousalBaseline()).score(features)

    def _advance(self) -> None:
        streams = [s for s in (self._video_t, self._audio_t) if s is not None]
        if not streams:
            return
        # A stream far behind the newest has ended (or paused): it no longer holds windows back.
        newest = max(progress for progress, _ in streams)
        watermark = min(mark for progress, mark in streams if progress >= newest - STALE_S)
        for result in self._windows.advance(watermark):
            self._emit_window(result)

    def _emit_window(self, w: WindowResult) -> None:
        trend = None
        if w.room_engagement is not None:
            self._trend.append(((w.start + w.end) / 2, w.room_engagement))
            trend = slope_per_minute([t for t, _ in self._trend], [e for _, e in self._trend])
        self._bus.emit(
            EventType.ENGAGEMENT_WINDOW,
            w.start,
            w.end,
            engagement_window(w, trend, self._reporting),
        )
        self._bus.emit(
            EventType.TURNS_WINDOW, w.start, w.end, turns_window(w, self._reporting, self._names)
        )
        self._summary.add_window(w)
        shift = self._shifts.update(w.room_valence)
        if shift is not None:
            self._bus.emit(
                EventType.SENTIMENT_SHIFT,
                w.start,
                w.end,
                SentimentShiftData(
                    direction="up" if shift.delta > 0 else "down",
                    from_valence=round(shift.from_valence, 4),
                    to_valence=round(shift.to_valence, 4),
                    delta=round(shift.delta, 4),
                ),
            )
            self._summary.add_shift(w.start, w.end, shift)
