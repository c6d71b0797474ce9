"""The one label space every head maps into, and its valence/arousal table.

Valence and arousal follow Russell's circumplex; the coordinates per class are rounded centroids
commonly used for the FER categories, so they are coarse by design: they order expressions sensibly
(happy > neutral > sad on valence; surprise, fear, angry high on arousal), nothing finer.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

EXPRESSIONS: Final = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")

#: class -> (valence, arousal), both in -1..1
VALENCE_AROUSAL: Final[dict[str, tuple[float, float]]] = {
    "angry": (-0.6, 0.7),
    "disgust": (-0.6, 0.3),
    "fear": (-0.6, 0.6),
    "happy": (0.8, 0.5),
    "sad": (-0.6, -0.4),
    "surprise": (0.3, 0.8),
    "neutral": (0.0, 0.0),
}

NEUTRAL_INDEX: Final = EXPRESSIONS.index("neutral")


def valence_arousal(probs: Sequence[float]) -> tuple[float, float]:
    """Expected valence and arousal under a distribution over EXPRESSIONS."""
    if len(probs) != len(EXPRESSIONS):
        raise ValueError(f"expected {len(EXPRESSIONS)} probabilities, got {len(probs)}")
    v = sum(p * VALENCE_AROUSAL[c][0] for p, c in zip(probs, EXPRESSIONS, strict=True))
    a = sum(p * VALENCE_AROUSAL[c][1] for p, c in zip(probs, EXPRESSIONS, strict=True))
    return v, a
