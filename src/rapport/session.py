"""One analysis session: media items in (any tap), aggregate events out.

Data flows one way: tap -> heads (faces, voice, language) -> per-face smoothing -> windows (late
fusion, engagement) -> events. The session never reaches back into a tap.
"""

from __future__ import annotations

import itertools
from collections import deque
from dataclasses import dataclass, field

import numpy as np

from rapport.analytics.payloads import Reporting, engagement_window, turns_window
from rapport.analytics.shifts import SentimentShiftDetector
from rapport.analytics.summary import SummaryBuilder
from rapport.analytics.windows import FrameSummary, WindowAggregator, WindowResult, slope_per_minute
from rapport.config import Settings
from rapport.events.bus import EventBus
from rapport.events.schema import (
    Event,
    EventType,
    SentimentShiftData,
    SessionStartedData,
)
from rapport.frames import SAMPLE_RATE, AudioChunk, SpeechSegment, Utterance, VideoFrame
from rapport.fusion.smoothing import ExpressionSmoother
from rapport.labels import NEUTRAL_INDEX
from rapport.pack import OfflinePack
from rapport.perception.faces import FaceTracker

ROOM_STREAM = "room"
"""Stream name of a shared room camera/microphone that belongs to no one participant."""

ATTRIBUTE_S = 1.5
"""Speech up to this far from a transcript cue is attributed to that cue's speaker."""

AUDIO_MEMORY_S = 30.0
"""Audio kept in memory for speech-to-text of the segment just closed; never written anywhere."""


@dataclass(slots=True)
class _VideoStream:
    tracker: FaceTracker
    smoothers: dict[int, ExpressionSmoother] = field(default_factory=dict)


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
    ) -> None:
        """`owner` is the person the media stream belongs to (None for a shared room camera);
        `speakers`, when the transcript names two or more, takes voice attribution from it."""
        self._settings = settings
        self._pack = pack
        self._bus = bus
        self._owner = owner
        self._reporting: Reporting = reporting
        self._windows = WindowAggregator(settings)
        self._summary = SummaryBuilder(reporting)
        self._shifts = SentimentShiftDetector(settings.window.sentiment_shift_delta)
        self._trend: deque[tuple[float, float]] = deque(maxlen=settings.window.trend_windows)
        self._video: dict[str, _VideoStream] = {}
        self._vad = pack.voice_activity(owner or ROOM_STREAM)
        self._audio: deque[AudioChunk] = deque()
        self._utterances: list[Utterance] = []
        self._speakers = speakers
        self._stt = pack.speech_to_text() if transcribe else None
        self._open_speaker: str | None = None
        self._video_t: float | None = None
        self._audio_t: float | None = None
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

    # -- inputs ---------------------------------------------------------------------------------

    def push_video(self, frame: VideoFrame) -> None:
        stream = self._video.get(frame.participant)
        if stream is None:
            faces = self._settings.faces
            stream = _VideoStream(FaceTracker(faces.track_iou, faces.track_gap_s))
            self._video[frame.participant] = stream
        detections = self._pack.detector.detect(frame.rgb)
        update = stream.tracker.update(frame.t, detections)
        for track_id in update.ended:
            stream.smoothers.pop(track_id, None)
        present = [(tid, d) for tid, d in update.slots if d is not None]
        expressions = self._pack.expressions.classify(frame.rgb, [d.box for _, d in present])
        valence: list[float] = []
        arousal: list[float] = []
        expressive: list[float] = []
        for (track_id, _), expression in zip(present, expressions, strict=True):
            smoother = stream.smoothers.get(track_id)
            if smoother is None:
                smoother = ExpressionSmoother.from_settings(self._settings.smoothing)
                stream.smoothers[track_id] = smoother
            smoothed = smoother.update(expression)
            if smoothed is not None:
                valence.append(smoothed.valence)
                arousal.append(smoothed.arousal)
                expressive.append(1.0 - smoothed.probs[NEUTRAL_INDEX])
        self.counts["frames"] += 1
        self.counts["faces"] += len(present)
        self._windows.add_frame(
            FrameSummary(
                participant=self._owner,
                t=frame.t,
                faces=len(present),
                attention=max((d.frontal for _, d in present), default=0.0),
                valence=_mean(valence),
                arousal=_mean(arousal),
                expressiveness=_mean(expressive),
            )
        )
        self._video_t = frame.t + 1.0 / self._settings.video.sample_fps
        self._advance()

    def push_audio(self, chunk: AudioChunk) -> None:
        self._remember(chunk)
        for segment in self._vad.push(chunk):
            self._on_speech(segment)
        self._track_open_speech(chunk.end)
        self._audio_t = chunk.end
        self._advance()

    def push_utterance(self, utterance: Utterance) -> None:
        self._utterances.append(utterance)
        self._windows.add_text(self._pack.text.score(utterance))
        self.counts["texts"] += 1

    # -- end --------------------------------------------------------------------------------------

    def finish(self, duration_s: float) -> Event:
        for segment in self._vad.flush():
            self._on_speech(segment)
        for result in self._windows.flush(duration_s):
            self._emit_window(result)
        summary = self._summary.build(duration_s, {"late_items": self._windows.late})
        event = self._bus.emit(EventType.SESSION_SUMMARY, 0.0, duration_s, summary)
        self._audio.clear()
        self._video.clear()
        return event

    # -- internals --------------------------------------------------------------------------------

    def _remember(self, chunk: AudioChunk) -> None:
        self._audio.append(chunk)
        while self._audio and chunk.end - self._audio[0].end > AUDIO_MEMORY_S:
            self._audio.popleft()

    def _segment_audio(self, start: float, end: float) -> np.ndarray:
        parts = []
        for c in self._audio:
            if c.end <= start or c.t >= end:
                continue
            lo = max(0, round((start - c.t) * SAMPLE_RATE))
            hi = min(len(c.samples), round((end - c.t) * SAMPLE_RATE))
            parts.append(c.samples[lo:hi])
        return np.concatenate(parts) if parts else np.zeros(0, np.float32)

    def _track_open_speech(self, now: float) -> None:
        since = self._vad.open_since
        who = self._attribute(since, now) if since is not None else None
        if self._open_speaker is not None and self._open_speaker != who:
            self._windows.set_open_speech(self._open_speaker, None)
        if who is not None:
            self._windows.set_open_speech(who, since)
        self._open_speaker = who

    def _attribute(self, start: float, end: float) -> str:
        """Who spoke during [start, end): the transcript's speaker with the most overlap when it
        names several, else the stream's owner."""
        if len(self._speakers) < 2:
            return self._owner or ROOM_STREAM
        # Most overlap wins; speech outside every cue goes to the nearest cue within ATTRIBUTE_S.
        best, best_score = self._owner or ROOM_STREAM, -ATTRIBUTE_S
        for u in self._utterances:
            score = min(end, u.end) - max(start, u.start)
            if score > best_score:
                best, best_score = u.participant, score
        return best

    def _split(self, segment: SpeechSegment) -> list[SpeechSegment]:
        """One VAD segment may hold several speakers' cues: cut it at cue boundaries and give each
        piece to its speaker (adjacent pieces of one speaker stay one piece)."""
        if len(self._speakers) < 2:
            return [SpeechSegment(self._owner or ROOM_STREAM, *_rest(segment))]
        cuts = sorted(
            {segment.start, segment.end}
            | {
                t
                for u in self._utterances
                for t in (u.start, u.end)
                if segment.start < t < segment.end
            }
        )
        pieces: list[SpeechSegment] = []
        for a, b in itertools.pairwise(cuts):
            who = self._attribute(a, b)
            if pieces and pieces[-1].participant == who:
                last = pieces.pop()
                a = last.start
            pieces.append(SpeechSegment(who, a, b, segment.arousal, segment.confidence))
        return pieces

    def _on_speech(self, segment: SpeechSegment) -> None:
        self.counts["speech_segments"] += 1
        for piece in self._split(segment):
            self._windows.add_speech(piece)
        if self._stt is not None:
            samples = self._segment_audio(segment.start, segment.end)
            utterance = self._stt.transcribe(self._owner or ROOM_STREAM, segment.start, samples)
            if utterance is not None:
                self.push_utterance(utterance)

    def _advance(self) -> None:
        marks = [t for t in (self._video_t, self._audio_t) if t is not None]
        if not marks:
            return
        for result in self._windows.advance(min(marks)):
            self._emit_window(result)

    def _emit_window(self, w: WindowResult) -> None:
        if w.room_engagement is not None:
            self._trend.append((w.end, w.room_engagement))
        trend = slope_per_minute([t for t, _ in self._trend], [e for _, e in self._trend])
        self._bus.emit(
            EventType.ENGAGEMENT_WINDOW,
            w.start,
            w.end,
            engagement_window(w, trend, self._reporting),
        )
        self._bus.emit(EventType.TURNS_WINDOW, w.start, w.end, turns_window(w, self._reporting))
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


def _rest(s: SpeechSegment) -> tuple[float, float, float | None, float]:
    return s.start, s.end, s.arousal, s.confidence


def _mean(values: list[float]) -> float | None:
    return sum(values) / len(values) if values else None
