"""Late fusion of per-modality valence/arousal estimates for one participant.

Each dimension is fused on its own, as a weighted mean over the modalities that measure it now:

    weight_m = prior_m * confidence_m,  renormalised to sum to 1 over those modalities.

A modality that is missing (absent key, confidence 0, or None for that dimension) is left out and
the others are renormalised: it is never imputed as a zero or neutral stand-in, which would pull the
result toward 0 whenever a camera is off or someone is silent. Voice prosody measures arousal only,
so it sets valence to None and never weighs on valence.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from types import MappingProxyType


class Modality(StrEnum):
    FACE = "face"
    VOICE = "voice"
    TEXT = "text"


@dataclass(slots=True, frozen=True)
class ModalityEstimate:
    valence: float | None
    """-1..1; None when this modality does not measure valence (voice prosody)."""
    arousal: float | None
    """-1..1"""
    confidence: float
    """0..1"""


@dataclass(slots=True, frozen=True)
class FusedAffect:
    valence: float | None
    """None when no present modality measures it."""
    arousal: float | None
    valence_weights: dict[str, float]
    """modality -> normalised weight actually used (sums to 1, or empty)."""
    arousal_weights: dict[str, float]
    modalities: tuple[str, ...]
    """Modalities present (confidence > 0), in Modality order."""


DEFAULT_PRIORS: Mapping[Modality, float] = MappingProxyType(
    {
        # Prior reliability per modality, scaled by each estimate's own confidence. The face is
        # observed continuously; text is sparse but explicit about valence; prosodic arousal is
        # the noisiest of the three.
        Modality.FACE: 1.0,
        Modality.TEXT: 0.8,
        Modality.VOICE: 0.6,
    }
)


def fuse(
    estimates: Mapping[Modality, ModalityEstimate],
    priors: Mapping[Modality, float] = DEFAULT_PRIORS,
) -> FusedAffect:
    """Fuse the estimates present; ValueError on out-of-range or NaN inputs or a missing prior."""
    checked = {_modality(k): _checked(k, e) for k, e in estimates.items()}
    present = [m for m in Modality if m in checked and checked[m].confidence > 0.0]
    weights = {m: _prior(priors, m) * checked[m].confidence for m in present}
    valence, valence_weights = _fuse_dim(present, weights, lambda m: checked[m].valence)
    arousal, arousal_weights = _fuse_dim(present, weights, lambda m: checked[m].arousal)
    return FusedAffect(
        valence=valence,
        arousal=arousal,
        valence_weights=valence_weights,
        arousal_weights=arousal_weights,
        modalities=tuple(m.value for m in present),
    )


def _fuse_dim(
    present: list[Modality],
    weights: Mapping[Modality, float],
    value: Callable[[Modality], float | None],
) -> tuple[float | None, dict[str, float]]:
    used = {m: (weights[m], v) for m in present if (v := value(m)) is not None and weights[m] > 0}
    total = math.fsum(w for w, _ in used.values())
    if total <= 0.0:
        return None, {}
    fused = math.fsum(w * v for w, v in used.values()) / total
    # Clamp against float drift only: a weighted mean of values in -1..1 stays in -1..1.
    return min(1.0, max(-1.0, fused)), {m.value: w / total for m, (w, _) in used.items()}


def _modality(key: Modality | str) -> Modality:
    try:
        return Modality(key)
    except ValueError as e:
        raise ValueError(f"unknown modality {key!r}") from e


def _checked(key: Modality, e: ModalityEstimate) -> ModalityEstimate:
    if not 0.0 <= e.confidence <= 1.0:  # False for NaN
        raise ValueError(f"{key}: confidence must be in 0..1, got {e.confidence}")
    for name, v in (("valence", e.valence), ("arousal", e.arousal)):
        if v is not None and not -1.0 <= v <= 1.0:
            raise ValueError(f"{key}: {name} must be in -1..1, got {v}")
    return e


def _prior(priors: Mapping[Modality, float], m: Modality) -> float:
    if m not in priors:
        raise ValueError(f"no prior for modality {m.value!r}")
    p = priors[m]
    if not (math.isfinite(p) and p >= 0.0):
        raise ValueError(f"prior for {m.value!r} must be finite and >= 0, got {p}")
    return p
