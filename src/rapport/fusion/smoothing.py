"""Per-face smoothing of expression probabilities, with hysteresis on the reported class.

An exponential moving average (EMA) of the class probabilities, and a reported label that changes
only when the evidence for a new class is sustained: the current label is kept while its smoothed
probability stays at or above `switch_off`, and a new class is adopted only once the current one has
fallen below `switch_off` *and* the top class has reached `switch_on`. A one-frame flip cannot do
both, so it never changes the label.

A frame where the face was not found (None) leaves the state untouched: gaps are skipped, never
averaged in as a neutral or zero stand-in.
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
    label: str
    """The reported class, after hysteresis."""
    valence: float
    """labels.valence_arousal(probs)[0]"""
    arousal: float


class ExpressionSmoother:
    """Per-face exponential smoothing with hysteresis on the reported class."""

    __slots__ = ("_alpha", "_current", "_switch_off", "_switch_on")

    def __init__(self, alpha: float, switch_on: float, switch_off: float) -> None:
        # Chained comparisons are False for NaN, so NaN is rejected too.
        if not 0.0 < alpha <= 1.0:
            raise ValueError(f"alpha must be in (0, 1], got {alpha}")
        if not 0.0 < switch_off < switch_on < 1.0:
            raise ValueError(
                f"need 0 < switch_off < switch_on < 1, got switch_off={switch_off}, "
                f"switch_on={switch_on}"
            )
        self._alpha = alpha
        self._switch_on = switch_on
        self._switch_off = switch_off
        self._current: SmoothedExpression | None = None

    @classmethod
    def from_settings(cls, s: SmoothingSettings) -> ExpressionSmoother:
        return cls(alpha=s.alpha, switch_on=s.switch_on, switch_off=s.switch_off)

    @property
    def current(self) -> SmoothedExpression | None:
        return self._current

    def update(self, expression: Expression | None) -> SmoothedExpression | None:
        """Fold in one frame's expression (None: face missing) and return the smoothed state."""
        if expression is None:
            return self._current
        obs = _checked(expression.probs)
        prev = self._current
        if prev is None:
            probs = obs
            label = EXPRESSIONS[_argmax(probs)]
        else:
            a = self._alpha
            probs = _normalised(
                [a * o + (1.0 - a) * p for o, p in zip(obs, prev.probs, strict=True)]
            )
            label = self._hysteresis(prev.label, probs)
        valence, arousal = valence_arousal(probs)
        self._current = SmoothedExpression(probs, label, valence, arousal)
        return self._current

    def _hysteresis(self, label: str, probs: tuple[float, ...]) -> str:
        cur = EXPRESSIONS.index(label)
        top = _argmax(probs)
        if top != cur and probs[cur] < self._switch_off and probs[top] >= self._switch_on:
            return EXPRESSIONS[top]
        return label


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


def _argmax(probs: tuple[float, ...]) -> int:
    return max(range(len(probs)), key=probs.__getitem__)
