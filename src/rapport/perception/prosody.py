"""Prosodic arousal of one speech segment, relative to the speaker's own running baseline.

Features of a segment (16 kHz float32 samples):

- ``f0``: mean pitch of voiced frames in semitones re 100 Hz (Praat autocorrelation, 75-500 Hz,
  10 ms steps);
- ``range``: pitch spread, 90th minus 10th percentile of voiced frames, in semitones;
- ``level``: intensity, mean dBFS of the louder half of 20 ms frames (so pauses inside the segment
  don't dilute it);
- ``rate``: voiced onsets (unvoiced -> voiced frame transitions) per second, a cheap syllable-rate
  proxy.

Against this speaker's baseline of earlier voiced segments (exponentially weighted mean and
variance with weight ``max(1/n, 1/50)``: the plain mean of the first 50 segments, then a slow
drift)::

    z_k     = (x_k - mean_k) / max(sd_k, floor_k)       floors: 1.5 st, 1.5 st, 3 dB, 0.75 /s
    arousal = tanh(0.6 (0.35 z_f0 + 0.2 z_range + 0.35 z_level + 0.1 z_rate))
    conf    = (1 - exp(-voiced_s / 1 s)) * n / (n + 4)    n = segments in the baseline

The floors are typical utterance-to-utterance spreads of one calm speaker, so that a small or
monotonous baseline does not turn ordinary variation into strong arousal; the gain 0.6 puts a
one-spread rise on every feature at about +0.5.

With fewer than ``MIN_BASELINE`` segments in the baseline there is nothing to compare with:
arousal is 0 with confidence 0, so fusion gives it no weight.
A segment with no voiced frame has arousal None and confidence 0, and does not enter the baseline.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Final

import numpy as np
import parselmouth
from numpy.typing import NDArray

from rapport.frames import SAMPLE_RATE

PITCH_FLOOR_HZ: Final = 75.0
PITCH_CEILING_HZ: Final = 500.0
PITCH_STEP_S: Final = 0.01
MIN_BASELINE: Final = 2

_WEIGHTS: Final = np.array([0.35, 0.2, 0.35, 0.1])
_SD_FLOORS: Final = np.array([1.5, 1.5, 3.0, 0.75])
_GAIN: Final = 0.6
_MIN_WEIGHT: Final = 1 / 50
_FRAME: Final = SAMPLE_RATE // 50  # 20 ms


@dataclass(slots=True, frozen=True)
class Prosody:
    f0_st: float
    range_st: float
    level_db: float
    rate: float
    voiced_s: float

    def vector(self) -> NDArray[np.float64]:
        return np.array([self.f0_st, self.range_st, self.level_db, self.rate])


def measure(samples: NDArray[np.float32]) -> Prosody | None:
    """Prosodic features of one segment; None when no frame is voiced."""
    duration = len(samples) / SAMPLE_RATE
    if duration < 3 / PITCH_FLOOR_HZ:  # Praat needs three periods of the lowest pitch
        return None
    sound = parselmouth.Sound(samples.astype(np.float64), sampling_frequency=SAMPLE_RATE)
    pitch = sound.to_pitch(
        time_step=PITCH_STEP_S, pitch_floor=PITCH_FLOOR_HZ, pitch_ceiling=PITCH_CEILING_HZ
    )
    f0: NDArray[np.float64] = pitch.selected_array["frequency"]
    voiced = f0 > 0
    if not voiced.any():
        return None
    st = 12.0 * np.log2(f0[voiced] / 100.0)
    p10, p90 = np.percentile(st, [10, 90])
    onsets = int(voiced[0]) + int(np.count_nonzero(voiced[1:] & ~voiced[:-1]))
    return Prosody(
        f0_st=float(st.mean()),
        range_st=float(p90 - p10),
        level_db=_level_db(samples),
        rate=onsets / duration,
        voiced_s=float(voiced.sum()) * PITCH_STEP_S,
    )


def _level_db(samples: NDArray[np.float32]) -> float:
    n = len(samples) // _FRAME  # >= 1: measure() rejects shorter segments
    frames = samples[: n * _FRAME].astype(np.float64).reshape(n, _FRAME)
    db = np.sort(10.0 * np.log10(np.mean(frames**2, axis=1) + 1e-12))
    return float(db[n // 2 :].mean())


class ArousalBaseline:
    """One speaker's running prosodic baseline; turns a segment's features into arousal."""

    __slots__ = ("_mean", "_n", "_var")

    def __init__(self) -> None:
        self._n = 0
        self._mean = np.zeros(len(_WEIGHTS))
        self._var = np.zeros(len(_WEIGHTS))

    @property
    def size(self) -> int:
        """Segments seen so far."""
        return self._n

    def score(self, p: Prosody) -> tuple[float, float]:
        """(arousal, confidence) of `p` against the baseline so far, then add `p` to it."""
        n = self._n
        arousal, confidence = 0.0, 0.0
        if n >= MIN_BASELINE:
            z = (p.vector() - self._mean) / np.maximum(np.sqrt(self._var), _SD_FLOORS)
            arousal = math.tanh(_GAIN * float(_WEIGHTS @ z))
            confidence = (1.0 - math.exp(-p.voiced_s)) * n / (n + 4)
        self._update(p.vector())
        return arousal, confidence

    def _update(self, x: NDArray[np.float64]) -> None:
        self._n += 1
        w = max(1.0 / self._n, _MIN_WEIGHT)
        delta = x - self._mean
        self._mean = self._mean + w * delta
        self._var = (1.0 - w) * (self._var + w * delta**2)
