"""One analysis session: media items in (any tap), aggregate events out.

Data flows one way: tap -> heads (faces, voice, language) -> per-face smoothing -> windows (late
fusion, engagement) -> events. The session never reaches back into a tap.

Streams are named by whose they are: a participant's camera or microphone carries their user id
(a LiveKit room has one of each per participant), a shared room camera or microphone is ROOM_STREAM.
A window closes when every live stream is final up to its end: the last video frame, and the audio
up to the start of any speech segment still open in that microphone's VAD (its turn, speaking time,
prosody and transcription all land in the window where it began). Segments are cut at the window
length, so speech delays a window by at most one window. A live source also ticks the clock, so
windows close while no one sends media.

Consent: behind a gate, every item is admitted or dropped at its turn, and no model sees an item
its person's consent does not allow at that moment (a live queue's waiting audio may be run by the
VAD ahead of its turn, with another microphone's, when `ConsentGate.allows` says so then; at its
turn it is admitted or dropped like any item, and a dropped chunk's VAD result goes unused). A
person takes part in a window only through admitted items that cover it (see analytics/windows.py).
Purges (revocation, erasure) are applied at the start of every public call, never in the middle of
one, so no state changes under an iteration; after a purge nothing about the person is left in the
session's memory. The invariants are stated and checked in rapport/invariants.py.

Metrics (rapport/metrics.py): each head call is timed per head, and each window emitted counted.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Sequence
from datetime import datetime

import numpy as np
from numpy.typing import NDArray

from rapport.analytics.payloads import (
    Pseudonyms,
    Reporting,
    engagement_window,
    turns_window,
    withheld,
)
from rapport.analytics.shifts import SentimentShiftDetector
from rapport.analytics.summary import SummaryBuilder
from rapport.analytics.synchrony import SynchronyTracker
from rapport.analytics.windows import WindowAggregator, WindowResult, slope_per_minute
from rapport.config import Settings
from rapport.consent.gate import ConsentGate, Purge
from rapport.events.bus import EventBus
from rapport.events.schema import (
    DegradedSampling,
    Event,
    EventType,
    MediaTime,
    SentimentShiftData,
    SessionResumedData,
    SessionStartedData,
)
from rapport.frames import SAMPLE_RATE, AudioChunk, SpeechSegment, Utterance, VideoFrame
from rapport.metrics import INFERENCE_SECONDS, WINDOWS_EMITTED
from rapport.pack import OfflinePack
from rapport.perception import prosody
from rapport.perception.face_stream import FaceStream
from rapport.perception.vad import prefetch
from rapport.perception.voice import VoiceActivity
from rapport.speakers import ATTRIBUTE_S, SpeakerAttribution

ROOM_STREAM = "room"
"""Stream name of a shared room camera/microphone that belongs to no one participant."""

AUDIO_SLACK_S = 5.0
"""Audio is kept (in memory, never stored) for the segment being closed, when a head reads it: a
segment is at most one window long, and closes within a few chunks of its end."""

STALE_S = 2.0
"""A stream this far behind the others (it ended, or a camera went off) stops holding windows."""

CLOCK = ("clock", "")

_VAD = INFERENCE_SECONDS.labels("voice_activity")
_VOICE_EMOTION = INFERENCE_SECONDS.labels("voice_emotion")
_TEXT = INFERENCE_SECONDS.labels("text")
_STT = INFERENCE_SECONDS.labels("speech_to_text")


class _Microphone:
    """One microphone: its VAD, who speaks on it, and its last seconds of audio when something
    reads them (speech emotion, speech-to-text, per-speaker prosody); otherwise none is kept."""

    def __init__(self, vad: VoiceActivity, owner: str | None, keep_s: float) -> None:
        self.vad = vad
        self.owner = owner
        """None for a shared microphone: the transcript's cues say who spoke."""
        self.audio: deque[AudioChunk] = deque()
        self._keep_s = keep_s

    def remember(self, chunk: AudioChunk) -> None:
        if self._keep_s <= 0:
            return
        self.audio.append(chunk)
        while self.audio and chunk.end - self.audio[0].end > self._keep_s:
            self.audio.popleft()

    def samples(self, start: float, end: float) -> NDArray[np.float32]:
        parts = []
        for c in self.audio:
            if c.end <= start or c.t >= end:
                continue
            lo = max(0, round((start - c.t) * SAMPLE_RATE))
            hi = min(len(c.samples), round((end - c.t) * SAMPLE_RATE))
            parts.append(c.samples[lo:hi])
        return np.concatenate(parts) if parts else np.zeros(0, np.float32)


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
        live: bool = False,
    ) -> None:
        """`owner` is the person a recording belongs to (None for a shared room camera and mic, and
        for a live room, whose streams are named by participant); `speakers`, when the transcript
        names two or more, attributes a shared microphone's voice from it;
        `duration_s`, when known (a recording), lets a short tail join the last window;
        `gate`, when given, rules on every item before any model sees it (the service always
        gives one; the local `rapport analyze` of one's own recording does not); `live` (a room)
        cuts speech at window boundaries, so a window closes on time while someone talks."""
        self._settings = settings
        self._pack = pack
        self._bus = bus
        self._reporting: Reporting = reporting
        self._windows = WindowAggregator(settings, duration_s)
        self._names = Pseudonyms()
        self._min_participants = settings.reporting.min_participants
        self._summary = SummaryBuilder(reporting, self._names, self._min_participants)
        self._speakers = speakers
        self._shifts = SentimentShiftDetector(settings.window.sentiment_shift_delta)
        self._trend: deque[tuple[float, float]] = deque(maxlen=settings.window.trend_windows)
        self._synchrony = (
            SynchronyTracker(
                settings.synchrony,
                settings.video.sample_fps,
                # A live camera may be sampled down to the floor: coverage spans its interval.
                settings.video.min_sample_fps if live else None,
            )
            if settings.synchrony.enabled
            else None
        )
        self._faces: dict[str, FaceStream] = {}
        self._faces_dropped = 0
        """Classifications the engine dropped, in face streams that have ended."""
        self._cues = SpeakerAttribution(None, speakers)
        self._gate = gate
        self._live = live
        self._mics: dict[str, _Microphone] = {}
        self._baselines: dict[str, prosody.ArousalBaseline] = {}
        self._stt = pack.speech_to_text() if transcribe else None
        # (progress, watermark) per (kind, stream): how far it has arrived, and up to where it is
        # final.
        self._marks: dict[tuple[str, str], tuple[float, float]] = {}
        # Window index -> stream -> lowest rate its frames in that window were sampled at, for
        # the streams a live tap sampled below video.sample_fps (the window's `degraded` note).
        self._degraded: dict[int, dict[str, float]] = {}
        self._progress = 0.0  # read from other threads: a float, never a dict being resized
        self.counts: dict[str, int] = {"frames": 0, "faces": 0, "speech_segments": 0, "texts": 0}

    def start(
        self, *, source: str, modalities: list[str], media_origin: datetime | None = None
    ) -> None:
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
                media_origin=media_origin,
            ),
        )

    def resume(self, *, at: float, gap_start: float, reason: str) -> None:
        """Carry on a live session another worker held until media time `gap_start` (the end of
        its last window): windows start again at the first boundary from `at`, and a
        session.resumed event states the media time no worker analysed."""
        boundary = self._windows.resume_at(at)
        if self._synchrony is not None:
            self._synchrony.restart(boundary)
        self._progress = max(self._progress, at)
        self._bus.emit(
            EventType.SESSION_RESUMED,
            gap_start,
            boundary,
            SessionResumedData(
                reason="worker_drained" if reason == "worker_drained" else "worker_lost",
                gap=MediaTime(start=gap_start, end=boundary),
            ),
        )

    @property
    def speaking(self) -> frozenset[str]:
        """Participants whose microphone's VAD has speech open now (their own microphones only).
        Read by the live loop for adaptive sampling, on the session's thread, between calls."""
        return frozenset(
            m.owner
            for m in self._mics.values()
            if m.owner is not None and m.vad.pending_since is not None
        )

    @property
    def media_time(self) -> float:
        """How far the media has arrived, in seconds (safe to read from any thread)."""
        return self._progress

    # -- inputs ---------------------------------------------------------------------------------

    def push_video(self, frame: VideoFrame) -> None:
        self._purge()
        key = ("video", frame.participant)
        t = frame.t + 1.0 / self._settings.video.sample_fps
        if not self._admit(frame.participant, "face"):
            self._refused(t)
            return
        stream = self._faces.get(frame.participant)
        if stream is None:
            stream = self._faces[frame.participant] = FaceStream(
                self._pack.detector,
                self._pack.expressions,
                self._settings.faces,
                self._settings.smoothing,
                self._owner_of(frame.participant),
            )
        summary = stream.process(frame)
        if frame.sample_fps is not None and frame.sample_fps < self._settings.video.sample_fps:
            lowered = self._degraded.setdefault(int(frame.t // self._settings.window.seconds), {})
            lowered[frame.participant] = min(
                frame.sample_fps, lowered.get(frame.participant, frame.sample_fps)
            )
        self.counts["frames"] += 1
        self.counts["faces"] += summary.faces
        if summary.participant is None:  # a shared camera: its people are in the room
            self._present(frame.participant, frame.t, t)
        self._windows.add_frame(summary)
        if self._synchrony is not None:
            self._synchrony.add(summary)
        self._mark(key, t, t)

    def push_audio(self, chunk: AudioChunk, ahead: Sequence[AudioChunk] = ()) -> None:
        """`ahead`: other microphones' next chunks, waiting behind this one: their voice activity
        is computed with this chunk's, in one batch (each is still processed in its turn)."""
        self._purge()
        key = ("audio", chunk.participant)
        if not self._admit(chunk.participant, "voice"):
            self._refused(chunk.end)
            return
        self._present(chunk.participant, chunk.t, chunk.end)
        mic = self._mic(chunk.participant)
        mic.remember(chunk)
        with _VAD.time():
            if ahead:
                self._prefetch_vad(chunk, mic, ahead)
            segments = mic.vad.push(chunk)
        for segment in segments:
            self._on_speech(mic, segment)
        pending = mic.vad.pending_since
        if self._live and pending is not None:
            w = self._settings.window.seconds
            boundary = math.floor(chunk.end / w) * w
            if boundary > pending:
                for segment in mic.vad.cut(boundary):
                    self._on_speech(mic, segment)
                pending = mic.vad.pending_since
        self._mark(key, chunk.end, chunk.end if pending is None else min(chunk.end, pending))

    def _prefetch_vad(
        self, chunk: AudioChunk, mic: _Microphone, ahead: Sequence[AudioChunk]
    ) -> None:
        # Only microphones already open whose one person is allowed now (a shared microphone's
        # chunks wait for their turn); counted nothing: `admit` still rules at each one's turn,
        # and a prefetched result serves only the exact samples and state it was computed from.
        streams = [mic.vad.ahead(chunk)]
        for c in ahead:
            other = self._mics.get(c.participant) if c.participant != chunk.participant else None
            if other and (self._gate is None or self._gate.allows(c.participant, "voice")):
                streams.append(other.vad.ahead(c))
        prefetch([s for s in streams if s is not None])

    def push_utterance(self, utterance: Utterance) -> None:
        self._purge()
        self._push_text(utterance)

    def _push_text(self, utterance: Utterance) -> None:
        if not self._admit(utterance.participant, "text"):
            return
        self._cues.add(utterance)
        with _TEXT.time():
            score = self._pack.text.score(utterance)
        self._windows.add_text(score)
        self.counts["texts"] += 1

    def tick(self, t: float) -> None:
        """A live source's clock reached `t`: windows close even while no media arrives."""
        self._purge()
        self._refused(t)

    def end_stream(self, kind: str, stream: str) -> None:
        """A camera or microphone stopped (its participant left, or it was unpublished): its open
        speech is closed and it no longer holds windows back."""
        self._purge()
        self._marks.pop((kind, stream), None)
        if kind == "video":  # its tracks and their smoothing go: a face back later starts anew
            self._end_faces(stream)
        mic = self._mics.pop(stream, None) if kind == "audio" else None
        if mic is not None:
            for segment in mic.vad.flush():
                self._on_speech(mic, segment)
        self._advance()

    # -- end --------------------------------------------------------------------------------------

    def suspend(self, t: float) -> None:
        """Hand the session over (its worker is shutting down): open speech and every open window
        up to media time `t` are closed and emitted, no summary; the worker that resumes it
        starts at the next window boundary. Nothing is kept."""
        self._close_up_to(t)
        self._let_go()

    def finish(self, duration_s: float, dropped_by_tap: dict[str, int] | None = None) -> Event:
        self._close_up_to(duration_s)
        dropped = {
            "late_items": self._windows.late,
            "faces_dropped_by_engine": self._faces_dropped
            + sum(s.dropped for s in self._faces.values()),
        }
        dropped.update(dropped_by_tap or {})
        if self._gate is not None:
            gate_dropped = self._gate.counts()["dropped"]
            assert isinstance(gate_dropped, dict)
            dropped.update(gate_dropped)
        summary = self._summary.build(duration_s, dropped)
        event = self._bus.emit(EventType.SESSION_SUMMARY, 0.0, duration_s, summary)
        self._let_go()
        return event

    def _close_up_to(self, t: float) -> None:
        """Open speech ends, and every window up to `t` is emitted (the last one short)."""
        self._purge()
        for mic in list(self._mics.values()):
            for segment in mic.vad.flush():
                self._on_speech(mic, segment)
        for result in self._windows.flush(t):
            self._emit_window(result)

    def _let_go(self) -> None:
        self._mics.clear()
        self._faces.clear()
        self._baselines.clear()
        self._marks.clear()
        self._degraded.clear()
        self._cues.clear()
        if self._synchrony is not None:
            self._synchrony.clear()

    # -- consent ----------------------------------------------------------------------------------

    def _admit(self, stream: str, modality: str) -> bool:
        return self._gate is None or self._gate.admit(stream, modality)

    def _purge(self) -> None:
        if self._gate is not None:
            for purge in self._gate.take_purges():
                self.forget(purge)

    def forget(self, purge: Purge) -> None:
        """Drop everything held in memory about one person (consent revoked, or erased). Streams
        they are part of lose their state too: a shared camera's tracks, a shared microphone's
        open speech. Erasure also withdraws the room numbers they contributed to, and the room
        trend and shift detector start again from the others' windows."""
        person = purge.person
        for stream in [s for s in self._faces if person in self._people(s)]:
            self._end_faces(stream)
        for stream in [s for s in self._mics if person in self._people(s)]:
            del self._mics[stream]  # open speech and the audio it keeps go with it
        for key in [k for k in self._marks if k != CLOCK and person in self._people(k[1])]:
            del self._marks[key]
        for lowered in self._degraded.values():
            for stream in [s for s in lowered if person in self._people(s)]:
                del lowered[stream]
        self._baselines.pop(person, None)
        self._cues.forget(person)
        self._windows.forget(person)
        self._summary.forget(person, erased=purge.erased, token=purge.token)
        self._names.forget(person)
        if self._synchrony is not None:
            self._synchrony.forget(person)
        if purge.erased:
            self._trend.clear()
            self._shifts = SentimentShiftDetector(self._settings.window.sentiment_shift_delta)

    # -- internals --------------------------------------------------------------------------------

    def _owner_of(self, stream: str) -> str | None:
        return None if stream == ROOM_STREAM else stream

    def _end_faces(self, stream: str) -> None:
        faces = self._faces.pop(stream, None)
        if faces is not None:
            self._faces_dropped += faces.dropped

    def _people(self, stream: str) -> tuple[str, ...]:
        """Whose a stream is: its owner, or the members of a shared one."""
        if self._gate is not None:
            return self._gate.stream_people(stream)
        return self._speakers if stream == ROOM_STREAM else (stream,)

    def _present(self, stream: str, start: float, end: float) -> None:
        for person in self._people(stream):
            self._windows.add_presence(person, start, end)

    def _mark(self, key: tuple[str, str], progress: float, final: float) -> None:
        self._marks[key] = (progress, final)
        self._progress = max(self._progress, progress)
        self._advance()

    def _refused(self, t: float) -> None:
        # A refused item moves time on like the clock, under no stream's name: nothing of a
        # person without consent is kept, not even that their stream exists.
        clock = self._marks.get(CLOCK, (t, t))[0]
        self._mark(CLOCK, max(clock, t), max(clock, t))

    def _mic(self, stream: str) -> _Microphone:
        mic = self._mics.get(stream)
        if mic is None:
            owner = self._owner_of(stream)
            # A shared mic's prosody is scored per attributed speaker, against their own baseline.
            shared = owner is None and self._cues.multi
            window = self._settings.window.seconds
            vad = self._pack.voice_activity(stream, max_speech_s=window, prosody=not shared)
            read = shared or self._stt is not None or self._pack.voice_emotion is not None
            keep = window + AUDIO_SLACK_S if read else 0.0
            mic = self._mics[stream] = _Microphone(vad, owner, keep)
        return mic

    def _on_speech(self, mic: _Microphone, segment: SpeechSegment) -> None:
        self.counts["speech_segments"] += 1
        pieces = (
            [(mic.owner, segment.start, segment.end)]
            if mic.owner is not None
            else self._cues.split(segment.start, segment.end)
        )
        for who, start, end in pieces:
            if who is None:
                self._windows.add_room_speech(start, end)
                continue
            arousal, confidence = segment.arousal, segment.confidence
            valence = None
            if self._pack.voice_emotion is not None:
                samples = mic.samples(start, end)
                with _VOICE_EMOTION.time():
                    scored = self._pack.voice_emotion.score(samples)
                valence, arousal, confidence = scored if scored else (None, None, 0.0)
            elif mic.owner is None and self._cues.multi:
                arousal, confidence = self._speaker_arousal(mic, who, start, end)
            self._windows.add_speech(SpeechSegment(who, start, end, arousal, confidence, valence))
        if self._stt is not None:
            samples = mic.samples(segment.start, segment.end)
            with _STT.time():
                utterance = self._stt.transcribe(segment.participant, segment.start, samples)
            if utterance is not None:
                self._push_text(utterance)

    def _speaker_arousal(
        self, mic: _Microphone, who: str, start: float, end: float
    ) -> tuple[float | None, float]:
        features = prosody.measure(mic.samples(start, end))
        if features is None:
            return None, 0.0
        return self._baselines.setdefault(who, prosody.ArousalBaseline()).score(features)

    def _advance(self) -> None:
        if not self._marks:
            return
        # A stream far behind the newest has ended (or paused): it no longer holds windows back.
        # The clock holds nothing back: it only moves time on when no media stream is live.
        newest = max(progress for progress, _ in self._marks.values())
        live = [
            mark
            for key, (progress, mark) in self._marks.items()
            if key != CLOCK and progress >= newest - STALE_S
        ]
        watermark = min(live) if live else newest
        # Speech starting from here on is attributed by cues ending at most ATTRIBUTE_S before.
        self._cues.prune(watermark - ATTRIBUTE_S)
        for result in self._windows.advance(watermark):
            self._emit_window(result)

    def _degraded_in(self, w: WindowResult) -> DegradedSampling | None:
        """The note for window `w` (its frames' lowered rates are let go of, with any earlier)."""
        lowered: dict[str, float] = {}
        for index in [i for i in self._degraded if i <= w.index]:
            for stream, fps in self._degraded.pop(index).items():
                if index == w.index:
                    lowered[stream] = min(fps, lowered.get(stream, fps))
        if not lowered:
            return None
        return DegradedSampling(sample_fps_min=min(lowered.values()), cameras=len(lowered))

    def _emit_window(self, w: WindowResult) -> None:
        hidden = withheld(w, self._reporting, self._min_participants)
        engagement = None if hidden else w.room_engagement
        valence = None if hidden else w.room_valence
        trend = None
        if engagement is not None:
            self._trend.append(((w.start + w.end) / 2, engagement))
            trend = slope_per_minute([t for t, _ in self._trend], [e for _, e in self._trend])
        payload = engagement_window(w, trend, self._reporting, hidden=hidden)
        degraded = self._degraded_in(w)
        if degraded is not None and not hidden:  # withheld: how many cameras is a count too
            room = payload.room.model_copy(update={"degraded": degraded})
            payload = payload.model_copy(update={"room": room})
        with self._bus.together():  # one window, stored as one (service/runs.py)
            self._bus.emit(EventType.ENGAGEMENT_WINDOW, w.start, w.end, payload)
            self._bus.emit(
                EventType.TURNS_WINDOW,
                w.start,
                w.end,
                turns_window(w, self._reporting, self._names, hidden=hidden),
            )
        self._summary.add_window(w, engagement, valence)
        WINDOWS_EMITTED.inc()
        synchrony = (
            self._synchrony.window(w.end, self._reporting, self._min_participants)
            if self._synchrony is not None
            else None
        )
        if synchrony is not None:
            start, data = synchrony
            self._bus.emit(EventType.SYNCHRONY_WINDOW, start, w.end, data)
        shift = self._shifts.update(valence)
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
