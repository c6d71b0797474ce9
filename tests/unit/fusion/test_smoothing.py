from __future__ import annotations

import math

import pytest

from rapport.config import SmoothingSettings
from rapport.frames import Expression
from rapport.fusion.smoothing import ExpressionSmoother
from rapport.labels import EXPRESSIONS, valence_arousal


def peaked(label: str, p: float = 0.9) -> Expression:
    rest = (1.0 - p) / (len(EXPRESSIONS) - 1)
    return Expression(tuple(p if c == label else rest for c in EXPRESSIONS))


def smoother() -> ExpressionSmoother:
    return ExpressionSmoother.from_settings(SmoothingSettings())


def test_first_observation_initialises_state() -> None:
    s = smoother()
    assert s.current is None
    out = s.update(peaked("surprise"))
    assert out is not None and out is s.current
    assert out.label == "surprise"
    assert out.probs == pytest.approx(peaked("surprise").probs)
    assert (out.valence, out.arousal) == pytest.approx(valence_arousal(out.probs))


@pytest.mark.parametrize(
    "settings",
    [SmoothingSettings(), SmoothingSettings(alpha=0.6, switch_on=0.5, switch_off=0.3)],
)
def test_one_frame_spikes_never_flip_the_label(settings: SmoothingSettings) -> None:
    s = ExpressionSmoother.from_settings(settings)
    labels, argmaxes = [], []
    for i in range(60):
        out = s.update(peaked("angry", 0.95) if i % 5 == 4 else peaked("happy"))
        assert out is not None
        labels.append(out.label)
        argmaxes.append(EXPRESSIONS[out.probs.index(max(out.probs))])
    assert set(labels) == {"happy"}
    if settings.alpha > 0.5:
        # With a fast EMA the spike does top the smoothed distribution: hysteresis holds the label.
        assert "angry" in argmaxes


def test_sustained_switch_changes_label_within_a_few_frames() -> None:
    s = smoother()
    for _ in range(20):
        s.update(peaked("happy"))
    switched_at = None
    for i in range(10):
        out = s.update(peaked("sad"))
        assert out is not None
        if out.label == "sad":
            switched_at = i
            break
        assert out.label == "happy"
    assert switched_at is not None and switched_at <= 4


def test_current_label_kept_while_above_switch_off_even_if_other_is_higher() -> None:
    s = ExpressionSmoother(alpha=1.0, switch_on=0.5, switch_off=0.3)
    s.update(peaked("happy"))
    # happy 0.35 (>= switch_off) vs sad 0.6 (>= switch_on): hold happy.
    probs = [0.05 / 5] * len(EXPRESSIONS)
    probs[EXPRESSIONS.index("happy")] = 0.35
    probs[EXPRESSIONS.index("sad")] = 0.6
    out = s.update(Expression(tuple(probs)))
    assert out is not None and out.label == "happy"


def test_no_flip_on_noise_when_nothing_reaches_switch_on() -> None:
    s = ExpressionSmoother(alpha=1.0, switch_on=0.5, switch_off=0.3)
    s.update(peaked("happy"))
    # happy has dropped below switch_off but the top class (sad, 0.4) is below switch_on.
    probs = [0.4 / 5] * len(EXPRESSIONS)
    probs[EXPRESSIONS.index("happy")] = 0.2
    probs[EXPRESSIONS.index("sad")] = 0.4
    out = s.update(Expression(tuple(probs)))
    assert out is not None and out.label == "happy"


def test_none_leaves_state_unchanged_and_is_not_averaged_in() -> None:
    stream = [peaked("happy"), peaked("sad"), peaked("sad", 0.7), peaked("fear"), peaked("sad")]
    with_gaps = ExpressionSmoother.from_settings(SmoothingSettings())
    without = ExpressionSmoother.from_settings(SmoothingSettings())
    assert with_gaps.update(None) is None
    for e in stream:
        before = without.update(e)
        assert with_gaps.update(e) == before
        for _ in range(3):
            assert with_gaps.update(None) == before
    assert with_gaps.current == without.current


def test_smoothed_probs_stay_a_distribution() -> None:
    s = smoother()
    for i in range(50):
        out = s.update(peaked(EXPRESSIONS[i % len(EXPRESSIONS)], 0.6 + (i % 4) / 10))
        assert out is not None
        assert math.fsum(out.probs) == pytest.approx(1.0)
        assert all(0.0 <= p <= 1.0 for p in out.probs)


@pytest.mark.parametrize(
    ("alpha", "on", "off"),
    [
        (0.0, 0.5, 0.3),
        (1.5, 0.5, 0.3),
        (-0.1, 0.5, 0.3),
        (math.nan, 0.5, 0.3),
        (0.3, 0.3, 0.5),  # off above on
        (0.3, 0.4, 0.4),  # no gap
        (0.3, 1.0, 0.4),
        (0.3, 0.5, 0.0),
        (0.3, math.nan, 0.2),
    ],
)
def test_bad_parameters_raise(alpha: float, on: float, off: float) -> None:
    with pytest.raises(ValueError):
        ExpressionSmoother(alpha=alpha, switch_on=on, switch_off=off)


def test_bad_expression_raises() -> None:
    s = smoother()
    with pytest.raises(ValueError):
        s.update(Expression((0.5, 0.5)))
    with pytest.raises(ValueError):
        s.update(Expression((math.nan,) + (0.1,) * (len(EXPRESSIONS) - 1)))
    assert s.current is None
