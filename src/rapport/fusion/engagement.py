"""Per-participant engagement over one window, from attention, expressiveness and participation.

Reference for what the numbers mean (all in 0..1):

attention
    Share of the window's sampled frames in which the person's face was present and turned to the
    camera: the mean of Detection.frontal, with frames where the face was missing counted as 0.
    None when there is no video for them (camera off, audio only): then it is left out, not 0.

expressiveness
    Relative to the person's own baseline, so a naturally calm face is not read as disengaged. Raw
    expressiveness is the window's mean of (1 - smoothed p(neutral)). The baseline is the mean and
    standard deviation (population; floored at EXPRESSIVENESS_STD_FLOOR so a very still face is not
    over-amplified) of raw expressiveness over the windows that end less than `baseline_s` seconds
    after the end of the first window in which their face was seen. Then

        relative = 0.5 + 0.5 * tanh((raw - mean) / std / 2)

    0.5 means "their usual"; above 0.5 livelier than usual, below calmer. While the baseline is
    being collected (`calibrating` is True) the windows collected so far are used, the current one
    included, so the first window scores 0.5. After that the baseline is frozen. None when no face
    was seen in the window.

participation
    From speaking share against a fair share (1 / participants), blended with turn-taking:

        participation = 0.8 * min(1, share / fair) + 0.2 * min(1, turns / 2)

    Speaking one's fair share and starting two turns scores 1. A listener in a four-person room who
    never speaks scores low here, but their attention and expressiveness still count in the score.

score
    The weighted mean of the components present (w_attention, w_expressiveness, w_participation),
    renormalised over those present, clipped to 0..1. If every present component has weight 0
    (e.g. w_participation = 0 and the camera is off), the present components count equally.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from rapport.config import EngagementSettings

EXPRESSIVENESS_STD_FLOOR = 0.05
"""Smallest baseline standard deviation used when scaling expressiveness."""

_SHARE_WEIGHT = 0.8
_TURNS_WEIGHT = 0.2
_TURNS_FOR_FULL = 2


@dataclass(slots=True, frozen=True)
class EngagementInputs:
    attention: float | None
    """0..1 mean frontal-ness over sampled frames (missing face = 0); None without video."""
    expressiveness: float | None
    """Raw 0..1: window mean of (1 - smoothed p(neutral)); None when no face was seen."""
    speaking_share: float
    """0..1 share of the window's time they spoke."""
    turns: int
    """Speaking turns they started in the window."""
    participants: int
    """Participants present in the window (>= 1)."""


@dataclass(slots=True, frozen=True)
class Engagement:
    score: float
    attention: float | None
    expressiveness: float | None
    """Relative to their own baseline, 0..1; 0.5 = their usual."""
    participation: float
    calibrating: bool
    """True while the expressiveness baseline is still being collected (and it fed this score)."""


def participation(speaking_share: float, turns: int, participants: int) -> float:
    """0..1, see the module docstring."""
    fair = 1.0 / participants
    return _SHARE_WEIGHT * min(1.0, speaking_share / fair) + _TURNS_WEIGHT * min(
        1.0, turns / _TURNS_FOR_FULL
    )


class _Baseline:
    """Running mean and variance (Welford): constant memory however often windows end."""

    __slots__ = ("_m2", "mean", "n")

    def __init__(self) -> None:
        self.n = 0
        self.mean = 0.0
        self._m2 = 0.0

    def add(self, x: float) -> None:
        self.n += 1
        d = x - self.mean
        self.mean += d / self.n
        self._m2 += d * (x - self.mean)

    @property
    def std(self) -> float:
        return math.sqrt(max(0.0, self._m2) / self.n) if self.n else 0.0


class EngagementScorer:
    """One per participant: keeps that person's expressiveness baseline."""

    __slots__ = ("_baseline", "_baseline_until", "_last_end", "_s")

    def __init__(self, settings: EngagementSettings) -> None:
        if settings.w_attention + settings.w_expressiveness + settings.w_participation <= 0:
            raise ValueError("engagement weights are all zero")
        self._s = settings
        self._baseline = _Baseline()
        self._baseline_until: float | None = None  # set when their face is first seen
        self._last_end = -math.inf

    def score(self, window_end: float, inputs: EngagementInputs) -> Engagement:
        """Score one window; windows must be given in order of their end time."""
        _validate(inputs)
        if not window_end >= self._last_end:  # also rejects NaN
            raise ValueError(f"window_end {window_end} is before the previous {self._last_end}")
        self._last_end = window_end

        expressiveness: float | None = None
        calibrating = False
        if inputs.expressiveness is not None:
            if self._baseline_until is None:
                self._baseline_until = window_end + self._s.baseline_s
            calibrating = self._baseline.n == 0 or window_end < self._baseline_until
            if calibrating:
                self._baseline.add(inputs.expressiveness)
            expressiveness = self._relative(inputs.expressiveness)

        part = participation(inputs.speaking_share, inputs.turns, inputs.participants)
        parts = [
            (inputs.attention, self._s.w_attention),
            (expressiveness, self._s.w_expressiveness),
            (part, self._s.w_participation),
        ]
        present = [(v, w) for v, w in parts if v is not None]
        total = math.fsum(w for _, w in present)
        if total > 0:
            mean = math.fsum(v * w for v, w in present) / total
        else:
            mean = math.fsum(v for v, _ in present) / len(present)
        return Engagement(
            score=min(1.0, max(0.0, mean)),
            attention=inputs.attention,
            expressiveness=expressiveness,
            participation=part,
            calibrating=calibrating,
        )

    def _relative(self, raw: float) -> float:
        std = max(self._baseline.std, EXPRESSIVENESS_STD_FLOOR)
        return 0.5 + 0.5 * math.tanh((raw - self._baseline.mean) / std / 2.0)


def _validate(i: EngagementInputs) -> None:
    # `not a <= x <= b` is also True for NaN.
    for name, v in (("attention", i.attention), ("expressiveness", i.expressiveness)):
        if v is not None and not 0.0 <= v <= 1.0:
            raise ValueError(f"{name} must be in 0..1, got {v}")
    if not 0.0 <= i.speaking_share <= 1.0:
        raise ValueError(f"speaking_share must be in 0..1, got {i.speaking_share}")
    if i.turns < 0:
        raise ValueError(f"turns must be >= 0, got {i.turns}")
    if i.participants < 1:
        raise ValueError(f"participants must be >= 1, got {i.participants}")
