from __future__ import annotations

import numpy as np
import pytest

from rapport.config import EngagementSettings
from rapport.fusion.engagement import EngagementInputs, EngagementScorer, participation

WINDOW = 5.0
SETTINGS = EngagementSettings(baseline_s=60.0)


def inputs(
    expressiveness: float | None = 0.3,
    attention: float | None = 0.8,
    share: float = 0.25,
    turns: int = 1,
    participants: int = 4,
) -> EngagementInputs:
    return EngagementInputs(attention, expressiveness, share, turns, participants)


def run(scorer: EngagementScorer, raws: list[float], start: int = 1) -> list[float]:
    out = []
    for k, raw in enumerate(raws, start=start):
        e = scorer.score(k * WINDOW, inputs(expressiveness=raw)).expressiveness
        assert e is not None
        out.append(e)
    return out


@pytest.mark.parametrize("raw", [0.1, 0.6])
def test_calm_and_lively_people_both_score_their_usual_as_half(raw: float) -> None:
    scorer = EngagementScorer(SETTINGS)
    rel = run(scorer, [raw] * 30)
    assert rel[0] == pytest.approx(0.5)
    assert rel[-1] == pytest.approx(0.5)


def test_relative_expressiveness_scales_by_the_baseline_spread() -> None:
    scorer = EngagementScorer(SETTINGS)
    run(scorer, [0.0, 0.2] * 6)  # baseline mean 0.1, std 0.1 (above the floor)
    usual, one_std_up = run(scorer, [0.1, 0.2], start=13)
    assert usual == pytest.approx(0.5)
    assert one_std_up == pytest.approx(0.5 + 0.5 * np.tanh(0.5))


def test_calm_person_brightening_scores_above_half() -> None:
    scorer = EngagementScorer(SETTINGS)
    run(scorer, [0.1] * 12)  # windows ending at 5..60 s: the whole baseline
    brighter, calmer = run(scorer, [0.3, 0.05], start=13)
    assert brighter > 0.9
    assert calmer < 0.5


def test_baseline_freezes_after_calibration() -> None:
    scorer = EngagementScorer(SETTINGS)
    first = scorer.score(WINDOW, inputs(expressiveness=0.1))
    assert first.calibrating
    calib = [scorer.score(k * WINDOW, inputs(expressiveness=0.1)) for k in range(2, 13)]
    assert all(e.calibrating for e in calib)
    later = [scorer.score(k * WINDOW, inputs(expressiveness=0.4)) for k in range(13, 40)]
    assert not any(e.calibrating for e in later)
    # A lasting change stays visible: the baseline does not drift to absorb it.
    assert all(e.expressiveness is not None and e.expressiveness > 0.9 for e in later)


def test_calibration_starts_when_the_face_is_first_seen() -> None:
    scorer = EngagementScorer(SETTINGS)
    for k in range(1, 30):  # camera off for the first 145 s
        e = scorer.score(k * WINDOW, inputs(expressiveness=None, attention=None))
        assert not e.calibrating and e.expressiveness is None
    assert scorer.score(30 * WINDOW, inputs(expressiveness=0.6)).calibrating


def test_camera_off_scores_from_participation_alone() -> None:
    scorer = EngagementScorer(SETTINGS)
    e = scorer.score(WINDOW, inputs(expressiveness=None, attention=None, share=0.5, turns=1))
    assert e.attention is None and e.expressiveness is None
    assert e.participation == pytest.approx(0.8 * 1.0 + 0.2 * 0.5)
    assert e.score == pytest.approx(e.participation)


def test_silent_listener_keeps_attention_in_score() -> None:
    scorer = EngagementScorer(SETTINGS)
    e = scorer.score(WINDOW, inputs(expressiveness=0.2, attention=0.9, share=0.0, turns=0))
    assert e.participation == 0.0
    expected = (0.4 * 0.9 + 0.3 * 0.5 + 0.3 * 0.0) / 1.0
    assert e.score == pytest.approx(expected)


def test_participation_against_fair_share() -> None:
    assert participation(0.25, 2, 4) == pytest.approx(1.0)
    assert participation(0.125, 0, 4) == pytest.approx(0.4)
    assert participation(0.9, 5, 2) == pytest.approx(1.0)
    assert participation(0.0, 0, 1) == 0.0


def test_present_components_count_equally_when_all_their_weights_are_zero() -> None:
    settings = EngagementSettings(w_attention=1.0, w_expressiveness=1.0, w_participation=0.0)
    e = EngagementScorer(settings).score(WINDOW, inputs(expressiveness=None, attention=None))
    assert e.score == pytest.approx(e.participation)


def test_all_zero_weights_rejected() -> None:
    with pytest.raises(ValueError):
        EngagementScorer(EngagementSettings(w_attention=0, w_expressiveness=0, w_participation=0))


@pytest.mark.parametrize(
    "bad",
    [
        inputs(attention=1.2),
        inputs(expressiveness=-0.1),
        inputs(share=float("nan")),
        inputs(turns=-1),
        inputs(participants=0),
    ],
)
def test_inputs_validated(bad: EngagementInputs) -> None:
    with pytest.raises(ValueError):
        EngagementScorer(SETTINGS).score(WINDOW, bad)


def test_windows_must_not_go_back_in_time() -> None:
    scorer = EngagementScorer(SETTINGS)
    scorer.score(10.0, inputs())
    with pytest.raises(ValueError):
        scorer.score(5.0, inputs())


def test_score_always_within_unit_interval() -> None:
    rng = np.random.default_rng(1234)
    for _ in range(50):
        w = rng.uniform(0, 1, 3) * (rng.uniform(size=3) > 0.2)
        if w.sum() == 0:
            continue
        settings = EngagementSettings(
            baseline_s=float(rng.uniform(1, 120)),
            w_attention=float(w[0]),
            w_expressiveness=float(w[1]),
            w_participation=float(w[2]),
        )
        scorer = EngagementScorer(settings)
        t = 0.0
        for _ in range(100):
            t += float(rng.uniform(1, 10))
            att = float(rng.uniform()) if rng.uniform() > 0.3 else None
            expr = float(rng.uniform()) if rng.uniform() > 0.3 else None
            n = int(rng.integers(1, 9))
            e = scorer.score(
                t, EngagementInputs(att, expr, float(rng.uniform()), int(rng.integers(0, 6)), n)
            )
            assert 0.0 <= e.score <= 1.0
            assert 0.0 <= e.participation <= 1.0
            assert e.expressiveness is None or 0.0 <= e.expressiveness <= 1.0
            assert (e.expressiveness is None) == (expr is None)
