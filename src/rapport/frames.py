"""Hot-path messages passed between stages.

Frozen, slotted dataclasses: cheap to create, safe to share across threads. Times are media seconds
from the start of the session. None of these ever leaves the process (see events/ for what does).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

SAMPLE_RATE = 16_000
"""Every AudioChunk is mono float32 at this rate, in [-1, 1]."""


@dataclass(slots=True, frozen=True)
class VideoFrame:
    participant: str
    t: float
    rgb: NDArray[np.uint8]
    """H x W x 3, RGB order, C-contiguous."""
    sample_fps: float | None = None
    """The rate its stream was sampled at when it was taken, where a live tap lowered it below
    `video.sample_fps` (rapport/sampling.py); None: as configured."""


@dataclass(slots=True, frozen=True)
class AudioChunk:
    participant: str
    t: float
    """Media time of the first sample."""
    samples: NDArray[np.float32]

    @property
    def end(self) -> float:
        return self.t + len(self.samples) / SAMPLE_RATE


@dataclass(slots=True, frozen=True)
class Utterance:
    participant: str
    start: float
    end: float
    text: str


@dataclass(slots=True, frozen=True)
class Box:
    """Axis-aligned box in pixels of the frame it was found in."""

    x0: float
    y0: float
    x1: float
    y1: float

    @property
    def width(self) -> float:
        return max(0.0, self.x1 - self.x0)

    @property
    def height(self) -> float:
        return max(0.0, self.y1 - self.y0)

    @property
    def area(self) -> float:
        return self.width * self.height

    def iou(self, other: Box) -> float:
        ix = max(0.0, min(self.x1, other.x1) - max(self.x0, other.x0))
        iy = max(0.0, min(self.y1, other.y1) - max(self.y0, other.y0))
        inter = ix * iy
        union = self.area + other.area - inter
        return inter / union if union > 0 else 0.0


@dataclass(slots=True, frozen=True)
class Detection:
    box: Box
    score: float
    frontal: float
    """0..1: how squarely the face is turned to the camera (1 = straight on), from landmarks."""


@dataclass(slots=True, frozen=True)
class Expression:
    """Class probabilities over labels.EXPRESSIONS, in that order; they sum to 1."""

    probs: tuple[float, ...]


@dataclass(slots=True, frozen=True)
class SpeechSegment:
    """A stretch of voice activity with its prosodic arousal estimate."""

    participant: str
    start: float
    end: float
    arousal: float | None
    """-1..1 relative to this speaker's own running baseline; None when pitch was not measurable."""
    confidence: float
    """0..1: how much the arousal estimate should weigh in fusion."""
    valence: float | None = None
    """-1..1 from a speech-emotion head (full pack); None from prosody alone."""


@dataclass(slots=True, frozen=True)
class TextScore:
    participant: str
    start: float
    end: float
    valence: float
    """-1..1"""
    arousal: float
    """-1..1"""
    confidence: float
    """0..1"""


@dataclass(slots=True, frozen=True)
class FrameSummary:
    """What one sampled video frame of a stream says, reduced over its faces (stays in-process)."""

    participant: str | None
    """The person the stream belongs to; None for a shared room camera (room-level only)."""
    t: float
    faces: int
    attention: float
    """Max frontal score over the faces present; 0 when none is present."""
    valence: float | None
    arousal: float | None
    expressiveness: float | None
    """Mean of 1 - smoothed p(neutral) over the faces present."""
