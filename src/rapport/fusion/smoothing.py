"""Per-face smoothing of expression probabilities over media time.

Classifier output for one face jitters from frame to frame; what the windows and engagement need
is the expression held over a fraction of a second. So each tracked face keeps an exponential
moving average (EMA) of its class probabilities with a *time constant* `tau_s` in media seconds,
not a weight per frame: an observation arriving `dt` seconds after the previous one gets weight
`alpha = 1 - exp(-dt / tau_s)`, so the past decays by 1/e every `tau_s` seconds whatever the
sampling rate (`video.sample_fps`), the frames dropped on the way or the jitter of live arrival.
Each observation is taken to have held since the previous one, so for a step from p0 to p1 the
value at time t is `p1 + (p0 - p1) * exp(-(t - t_last) / tau_s)`, with t_last the last observation
before the step, however many observations fall in between.

Time: the first observation is taken as is. `t` must not go backwards (ValueError, state kept: the
face tracker refuses it the same way); an observation at the same `t` as the previous one gets
zero weight, so it changes nothing.

A frame where the face was not found (None) leaves the state untouched: gaps are skipped, never
averaged in as a neutral or zero stand-in; the next observation is weighted by the whole time
since the last one, so after a long gap it counts almost alone.

There is no reported class with hysteresis: no output reads a per-face label (events never carry
one); outputs use the smoothed probabilities and their valence and arousal.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from rapport.config import SmoothingSettings
from rapport.frames import Expression
from rapport.labels import EXPRESSIONS, valence_arousal


@dataclass(slots=True, frozen=True)
class SmoothedExpression:
    probs: tuple[float, ...]
    """EMA of class probabilities over labels.EXPRESSIONS; sums to 1."""
    valence: float
    """labels.valence_arousal(probs)[0]"""
    arousal: float
    """labels.valence_arousal(probs)[1]"""


class ExpressionSmoother:
    """One face's exponential smoothing of expression probabilities, on media time."""

    __slots__ = ("_current", "_t", "_tau")

    def __init__(self, tau_s: float) -> None:
        """`tau_s`: the time constant in media seconds (finite, > 0)."""
        if not (math.isfinite(tau_s) and tau_s > 0.0):
            raise ValueError(f"tau_s must be finite and > 0, got {tau_s}")
        self._tau = tau_s
        self._t = -math.inf  # media time of the last observation (-inf before the first)
        self._current: SmoothedExpression | None = None

    @classmethod
    def from_settings(cls, s: SmoothingSettings) -> ExpressionSmoother:
        return cls(tau_s=s.tau_s)

    @property
    def current(self) -> SmoothedExpression | None:
        return self._current

    def update(self, t: float, expression: Expression | None) -> SmoothedExpression | None:
        """Fold in the expression seen at media time `t` (None: face missing); return the state.

        Raises ValueError, leaving the state as it was, for a non-finite `t`, a `t` before the
        last observation, or probabilities that are not finite, non-negative, one per class and
        with a positive sum (they are renormalised).
        """
        if not math.isfinite(t):
            raise ValueError(f"t must be finite, got {t}")
        if t < self._t:
            raise ValueError(f"time went backwards: {t} after {self._t}")
        if expression is None:
            return self._current
        obs = _checked(expression.probs)
        prev = self._current
        if prev is None:
            probs = obs
        elif t == self._t:
            return prev  # dt = 0: zero weight
        else:
            # exp(-dt/tau) is the past's weight; expm1 keeps alpha accurate for small dt.
            x = (t - self._t) / self._tau
            keep, alpha = math.exp(-x), -math.expm1(-x)
            probs = _normalised(
                [alpha * o + keep * p for o, p in zip(obs, prev.probs, strict=True)]
            )
        valence, arousal = valence_arousal(probs)
        self._t = t
        self._current = SmoothedExpression(probs, valence, arousal)
        return self._current


def _checked(probs: tuple[float, ...]) -> tuple[float, ...]:
    if len(probs) != len(EXPRESSIONS):
        raise ValueError(f"expected {len(EXPRESSIONS)} probabilities, got {len(probs)}")
    if not all(math.isfinite(p) and p >= 0.0 for p in probs):
        raise ValueError("probabilities must be finite and non-negative")
    return _normalised(probs)


def _normalised(values: list[float] | tuple[float, ...]) -> tuple[float, ...]:
    # Renormalising keeps the EMA a distribution despite float drift or inputs off by rounding.
    total = math.fsum(values)
    if total <= 0.0:
        raise ValueError("probabilities sum to zero")
    return tuple(v / total for v in values)
