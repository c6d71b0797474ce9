"""Sentiment shifts: an event when the smoothed room valence moves by at least `delta`."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(slots=True, frozen=True)
class Shift:
    from_valence: float
    to_valence: float

    @property
    def delta(self) -> float:
        return self.to_valence - self.from_valence


class SentimentShiftDetector:
    """EMA over window valences; a shift fires when the EMA leaves the band of +-delta around the
    level of the last shift (or of the first window), and that new level becomes the reference."""

    def __init__(self, delta: float, alpha: float = 0.5) -> None:
        if not 0 < delta <= 2:
            raise ValueError("delta must be in (0, 2]")
        if not 0 < alpha <= 1:
            raise ValueError("alpha must be in (0, 1]")
        self._delta = delta
        self._alpha = alpha
        self._ema: float | None = None
        self._reference: float | None = None

    def update(self, valence: float | None) -> Shift | None:
        if valence is None:
            return None  # no measurement: nothing to smooth, never imputed
        self._ema = (
            valence if self._ema is None else self._ema + self._alpha * (valence - self._ema)
        )
        if self._reference is None:
            self._reference = self._ema
            return None
        if abs(self._ema - self._reference) >= self._delta:
            shift = Shift(self._reference, self._ema)
            self._reference = self._ema
            return shift
        return None
