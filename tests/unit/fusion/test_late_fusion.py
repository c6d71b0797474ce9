from __future__ import annotations

import math

import pytest

from rapport.fusion.late_fusion import DEFAULT_PRIORS, Modality, ModalityEstimate, fuse

FACE = ModalityEstimate(valence=0.6, arousal=0.2, confidence=0.9)
TEXT = ModalityEstimate(valence=-0.2, arousal=0.4, confidence=0.5)
VOICE = ModalityEstimate(valence=None, arousal=0.8, confidence=0.7)


def test_missing_modality_is_renormalised_not_imputed() -> None:
    face_only = fuse({Modality.FACE: FACE})
    assert face_only.valence == pytest.approx(FACE.valence)
    assert face_only.arousal == pytest.approx(FACE.arousal)
    assert face_only.valence_weights == {"face": pytest.approx(1.0)}
    assert face_only.modalities == ("face",)

    both = fuse({Modality.FACE: FACE, Modality.TEXT: TEXT})
    assert math.fsum(both.valence_weights.values()) == pytest.approx(1.0)
    wf, wt = 1.0 * 0.9, 0.8 * 0.5
    assert both.valence == pytest.approx((wf * 0.6 + wt * -0.2) / (wf + wt))
    assert both.valence_weights["face"] == pytest.approx(wf / (wf + wt))
    assert both.modalities == ("face", "text")


def test_zero_confidence_counts_as_missing() -> None:
    silent = ModalityEstimate(valence=-1.0, arousal=-1.0, confidence=0.0)
    fused = fuse({Modality.FACE: FACE, Modality.TEXT: silent})
    assert fused.valence == pytest.approx(FACE.valence)
    assert fused.modalities == ("face",)
    assert "text" not in fused.valence_weights


def test_voice_contributes_to_arousal_only() -> None:
    fused = fuse({Modality.FACE: FACE, Modality.VOICE: VOICE})
    assert fused.valence == pytest.approx(FACE.valence)
    assert set(fused.valence_weights) == {"face"}
    assert set(fused.arousal_weights) == {"face", "voice"}
    wf, wv = 1.0 * 0.9, 0.6 * 0.7
    assert fused.arousal == pytest.approx((wf * 0.2 + wv * 0.8) / (wf + wv))
    assert math.fsum(fused.arousal_weights.values()) == pytest.approx(1.0)


def test_voice_alone_gives_arousal_without_valence() -> None:
    fused = fuse({Modality.VOICE: VOICE})
    assert fused.valence is None and fused.valence_weights == {}
    assert fused.arousal == pytest.approx(0.8)


def test_all_missing() -> None:
    for estimates in ({}, {Modality.FACE: ModalityEstimate(0.5, 0.5, 0.0)}):
        fused = fuse(estimates)
        assert (fused.valence, fused.arousal) == (None, None)
        assert fused.valence_weights == {} and fused.arousal_weights == {}
        assert fused.modalities == ()


def test_priors_shift_the_balance() -> None:
    est = {Modality.FACE: FACE, Modality.TEXT: TEXT}
    text_heavy = fuse(est, {Modality.FACE: 0.1, Modality.TEXT: 1.0, Modality.VOICE: 1.0})
    default = fuse(est)
    assert default.valence is not None and text_heavy.valence is not None
    assert text_heavy.valence < default.valence
    assert DEFAULT_PRIORS[Modality.FACE] > DEFAULT_PRIORS[Modality.TEXT]


@pytest.mark.parametrize("confidence", [-0.1, 1.01, math.nan])
def test_confidence_range_validated(confidence: float) -> None:
    with pytest.raises(ValueError):
        fuse({Modality.FACE: ModalityEstimate(0.1, 0.1, confidence)})


@pytest.mark.parametrize(("valence", "arousal"), [(1.5, 0.0), (0.0, -1.2), (math.nan, 0.0)])
def test_value_range_validated(valence: float, arousal: float) -> None:
    with pytest.raises(ValueError):
        fuse({Modality.TEXT: ModalityEstimate(valence, arousal, 0.5)})


def test_missing_prior_or_unknown_modality_raises() -> None:
    with pytest.raises(ValueError):
        fuse({Modality.VOICE: VOICE}, {Modality.FACE: 1.0})
    with pytest.raises(ValueError):
        fuse({"smell": FACE})  # type: ignore[dict-item]
