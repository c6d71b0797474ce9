"""Deterministic heads whose outputs are functions of their inputs, so a test can compute what a
session must report: a pack with the real tracker, VAD state machine and session around them.

Media is encoded so each head can read it back:
- a frame's first pixel holds (faces, expression class, frontal * 255); faces sit at fixed boxes;
- audio is speech where |sample| > 0.05 (the fake VAD), and its level is the voice's valence;
- text says "good" (+0.6), "bad" (-0.6) or anything else (0).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from rapport.config import ReportingSettings, Settings, SynchronySettings, WindowSettings
from rapport.consent.gate import ConsentGate
from rapport.events.bus import EventBus
from rapport.events.schema import Event
from rapport.frames import (
    SAMPLE_RATE,
    AudioChunk,
    Box,
    Detection,
    Expression,
    TextScore,
    Utterance,
    VideoFrame,
)
from rapport.labels import EXPRESSIONS
from rapport.perception.vad import WINDOW
from rapport.perception.voice import VoiceActivity
from rapport.session import Session

SPEECH_LEVEL = 0.3


def frame(participant: str, t: float, faces: int = 1, expression: int = 3, frontal: float = 1.0):
    """A tiny frame the fake detector and classifier read back (see the module docstring)."""
    rgb = np.zeros((8, 8, 3), np.uint8)
    rgb[0, 0] = (faces, expression, round(frontal * 255))
    return VideoFrame(participant, t, rgb)


def audio(participant: str, t: float, seconds: float, speech: bool) -> AudioChunk:
    n = round(seconds * SAMPLE_RATE)
    level = SPEECH_LEVEL if speech else 0.0
    return AudioChunk(participant, t, np.full(n, level, np.float32))


class FakeDetector:
    name = "fake-detector"

    def detect(self, rgb: NDArray[np.uint8]) -> list[Detection]:
        faces, _, frontal = (int(v) for v in rgb[0, 0])
        return [
            Detection(Box(10.0 + 40 * i, 10.0, 40.0 + 40 * i, 40.0), 0.9, frontal / 255)
            for i in range(faces)
        ]


class FakeExpressions:
    name = "fake-expressions"

    def classify(
        self, rgb: NDArray[np.uint8], boxes: Sequence[Box], stream: str = ""
    ) -> list[Expression | None]:
        k = int(rgb[0, 0, 1]) % len(EXPRESSIONS)
        probs = tuple(0.7 if i == k else 0.3 / (len(EXPRESSIONS) - 1) for i in range(7))
        return [Expression(probs) for _ in boxes]


class FakeText:
    name = "fake-text"

    def score(self, utt: Utterance) -> TextScore:
        valence = 0.6 if "good" in utt.text else -0.6 if "bad" in utt.text else 0.0
        return TextScore(utt.participant, utt.start, utt.end, valence, 0.1, 0.9)


class FakeVoice:
    name = "fake-voice"

    def score(self, samples: NDArray[np.float32]) -> tuple[float, float, float] | None:
        if len(samples) == 0:
            return None
        level = float(np.mean(np.abs(samples)))
        return min(1.0, level), min(1.0, 2 * level), 0.8


class FakeVad:
    """Speech probability 1 where a window's mean level is above 0.05, else 0."""

    def reset(self) -> None:
        pass

    def probs(self, samples: NDArray[np.float32]) -> NDArray[np.float32]:
        windows = samples.reshape(-1, WINDOW)
        return (np.abs(windows).mean(axis=1) > 0.05).astype(np.float32)


class FakeSpeechToText:
    name = "fake-stt"

    def transcribe(
        self, participant: str, start: float, samples: NDArray[np.float32]
    ) -> Utterance | None:
        if len(samples) == 0:
            return None
        return Utterance(participant, start, start + len(samples) / SAMPLE_RATE, "good")


class FakePack:
    """Stands in for rapport.pack.OfflinePack (same members)."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self.detector = FakeDetector()
        self.expressions = FakeExpressions()
        self.text = FakeText()
        self.voice_emotion = FakeVoice()

    def voice_activity(
        self, participant: str, *, max_speech_s: float, prosody: bool = True
    ) -> VoiceActivity:
        return VoiceActivity(
            Path("/nonexistent"),
            self._settings.runtime,
            participant,
            max_speech_s=max_speech_s,
            prosody=False,
            vad=FakeVad(),  # type: ignore[arg-type]
        )

    def speech_to_text(self) -> FakeSpeechToText:
        return FakeSpeechToText()

    def model_names(self, modalities: list[str], *, transcribed: bool) -> dict[str, str]:
        return {m: f"fake-{m}" for m in modalities}


class MediaClock:
    """The gate's clock in media seconds, so consents expire on the session's own timeline."""

    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


class LiveRoom:
    """A live room's session (streams named by participant, ticks, `live=True`) on the fake heads,
    behind a consent gate on media time; its events are collected in `events`."""

    def __init__(
        self,
        *,
        window_s: float = 5.0,
        reporting: str = "participant",
        min_participants: int = 3,
        synchrony: SynchronySettings | None = None,
        **session: Any,
    ) -> None:
        self.settings = Settings(
            window=WindowSettings(seconds=window_s),
            reporting=ReportingSettings(min_participants=min_participants),
            # The shortest span, so short machine runs reach synchrony windows too.
            synchrony=synchrony
            or SynchronySettings(window_s=10.0, max_lag_s=2.0, min_coverage=0.25),
        )
        self.clock = MediaClock()
        self.gate = ConsentGate(self.clock)
        self.events: list[Event] = []
        self.pack = FakePack(self.settings)
        self.bus = EventBus("ses_fake", {"face": "fake"}, [self.events.append])
        self.session = Session(
            settings=self.settings,
            pack=self.pack,  # type: ignore[arg-type]
            bus=self.bus,
            owner=None,
            reporting=reporting,  # type: ignore[arg-type]
            gate=self.gate,
            live=True,
            **session,
        )
        self.session.start(source="livekit", modalities=["face", "voice", "text"])
