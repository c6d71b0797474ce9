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


#: Every label a supported head may emit (lower case) -> the class of EXPRESSIONS it means. The
#: transformer heads map their own label sets through this one table (tests keep it total over the
#: reference checkpoints' labels):
#: - face, trpakov/vit-face-expression (FER2013): angry disgust fear happy neutral sad surprise
#: - voice, superb/wav2vec2-base-superb-er (IEMOCAP, 4 classes): neu hap ang sad
#: - text, j-hartmann/emotion-english-distilroberta-base: anger disgust fear joy neutral sadness
#:   surprise
LABEL_ALIASES: Final[dict[str, str]] = {
    **{c: c for c in EXPRESSIONS},
    "anger": "angry",
    "ang": "angry",
    "disgusted": "disgust",
    "fearful": "fear",
    "joy": "happy",
    "happiness": "happy",
    "hap": "happy",
    "exc": "happy",  # IEMOCAP "excited", merged into happy by the 4-class benchmark
    "sadness": "sad",
    "surprised": "surprise",
    "neu": "neutral",
    "calm": "neutral",
}


def expression_map(labels: Sequence[str]) -> list[int]:
    """For each of a head's labels, the index of its class in EXPRESSIONS; ValueError names any
    label the table does not know (a checkpoint that cannot be mapped is refused at load)."""
    unknown = [lab for lab in labels if lab.strip().lower() not in LABEL_ALIASES]
    if unknown:
        raise ValueError(f"labels {unknown} have no expression class (labels.LABEL_ALIASES)")
    return [EXPRESSIONS.index(LABEL_ALIASES[lab.strip().lower()]) for lab in labels]


def to_expressions(probs: Sequence[float], mapping: Sequence[int]) -> tuple[float, ...]:
    """A head's distribution over its own labels, summed into one over EXPRESSIONS."""
    out = [0.0] * len(EXPRESSIONS)
    for p, index in zip(probs, mapping, strict=True):
        out[index] += float(p)
    return tuple(out)
