from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rapport.config import SmoothingSettings
from rapport.frames import Expression
from rapport.fusion.smoothing import ExpressionSmoother, SmoothedExpression
from rapport.labels import EXPRESSIONS, valence_arousal

N = len(EXPRESSIONS)


def peaked(label: str, p: float = 0.9) -> Expression:
    rest = (1.0 - p) / (N - 1)
    return Expression(tuple(p if c == label else rest for c in EXPRESSIONS))


def normalised(probs: tuple[float, ...]) -> tuple[float, ...]:
    total = math.fsum(probs)
    return tuple(p / total for p in probs)


def mix(keep: float, old: tuple[float, ...], new: tuple[float, ...]) -> tuple[float, ...]:
    """keep * old + (1 - keep) * new: what the smoother should hold."""
    return tuple(keep * o + (1.0 - keep) * n for o, n in zip(old, new, strict=True))


def smoother() -> ExpressionSmoother:
    return ExpressionSmoother.from_settings(SmoothingSettings())


def run(
    s: ExpressionSmoother, samples: list[tuple[float, Expression | None]]
) -> SmoothedExpression:
    out = None
    for t, e in samples:
        out = s.update(t, e)
    assert out is not None
    return out


# -- examples -------------------------------------------------------------------------------------


def test_first_observation_initialises_state() -> None:
    s = smoother()
    assert s.current is None
    out = s.update(3.0, peaked("surprise"))
    assert out is not None and out is s.current
    assert out.probs == pytest.approx(peaked("surprise").probs)
    assert (out.valence, out.arousal) == pytest.approx(valence_arousal(out.probs))


def test_no_label_is_reported() -> None:
    # The hysteresis label fed no output: it is gone rather than kept as dead weight.
    out = smoother().update(0.0, peaked("happy"))
    assert out is not None and not hasattr(out, "label")


def test_weight_of_the_past_decays_by_1_over_e_per_tau() -> None:
    s = ExpressionSmoother(tau_s=0.5)
    happy, sad = peaked("happy").probs, peaked("sad").probs
    s.update(0.0, Expression(happy))
    out = s.update(0.5, Expression(sad))
    assert out is not None
    assert out.probs == pytest.approx(mix(math.exp(-1.0), happy, sad), abs=1e-12)
    out = s.update(1.25, Expression(sad))
    assert out is not None
    assert out.probs == pytest.approx(mix(math.exp(-2.5), happy, sad), abs=1e-12)


def test_same_signal_at_4_and_8_fps_gives_same_value_after_1s() -> None:
    """The defect of issue 10: a fixed per-frame alpha made the smoothing time depend on the rate.

    Happy until t=0, sad afterwards; sampled at 4 and at 8 fps, the smoothed state after 1 s must be
    the same (with a per-frame alpha of 0.35 the happy weight left was 0.65**4 vs 0.65**8).
    """
    results = []
    for fps in (4, 8):
        s = smoother()
        s.update(0.0, peaked("happy"))
        out = run(s, [(k / fps, peaked("sad")) for k in range(1, fps + 1)])
        results.append(out)
    at_4, at_8 = results
    assert at_4.probs == pytest.approx(at_8.probs, abs=1e-12)
    assert (at_4.valence, at_4.arousal) == pytest.approx((at_8.valence, at_8.arousal), abs=1e-12)
    keep = math.exp(-1.0 / SmoothingSettings().tau_s)
    assert at_4.probs == pytest.approx(
        mix(keep, peaked("happy").probs, peaked("sad").probs), abs=1e-12
    )


def test_a_dropped_frame_does_not_slow_the_smoothing() -> None:
    # Frames lost in between (here: every other one) leave the value at a given time unchanged.
    full, lossy = smoother(), smoother()
    full.update(0.0, peaked("happy"))
    lossy.update(0.0, peaked("happy"))
    a = run(full, [(k / 4, peaked("angry")) for k in range(1, 9)])
    b = run(lossy, [(k / 4, peaked("angry")) for k in range(2, 9, 2)])
    assert a.probs == pytest.approx(b.probs, abs=1e-12)


def test_none_leaves_state_unchanged_and_is_not_averaged_in() -> None:
    stream = [peaked("happy"), peaked("sad"), peaked("sad", 0.7), peaked("fear"), peaked("sad")]
    with_gaps, without = smoother(), smoother()
    assert with_gaps.update(0.0, None) is None
    for i, e in enumerate(stream):
        t = float(i)
        before = without.update(t, e)
        assert with_gaps.update(t, e) == before
        for k in range(1, 4):
            assert with_gaps.update(t + k / 4, None) == before
    assert with_gaps.current == without.current


def test_repeated_time_gives_the_new_observation_no_weight() -> None:
    s = smoother()
    first = s.update(1.0, peaked("happy"))
    assert s.update(1.0, peaked("angry")) == first
    assert s.current == first


def test_time_going_backwards_is_refused_and_state_kept() -> None:
    s = smoother()
    s.update(1.0, peaked("happy"))
    before = s.current
    with pytest.raises(ValueError, match="backwards"):
        s.update(0.75, peaked("sad"))
    with pytest.raises(ValueError, match="backwards"):
        s.update(0.75, None)
    assert s.current == before
    assert s.update(1.25, peaked("sad")) != before  # still usable afterwards


@pytest.mark.parametrize("t", [math.nan, math.inf, -math.inf])
def test_non_finite_time_is_refused(t: float) -> None:
    s = smoother()
    with pytest.raises(ValueError, match="finite"):
        s.update(t, peaked("happy"))
    assert s.current is None


def test_unnormalised_input_is_renormalised() -> None:
    out = smoother().update(0.0, Expression((2.0,) * N))
    assert out is not None and out.probs == pytest.approx((1.0 / N,) * N)


@pytest.mark.parametrize("tau", [0.0, -0.5, math.nan, math.inf, -math.inf])
def test_bad_parameters_raise(tau: float) -> None:
    with pytest.raises(ValueError, match="tau_s"):
        ExpressionSmoother(tau_s=tau)


def test_from_settings_uses_tau() -> None:
    s = ExpressionSmoother.from_settings(SmoothingSettings(tau_s=2.0))
    happy, sad = peaked("happy").probs, peaked("sad").probs
    s.update(0.0, Expression(happy))
    out = s.update(1.0, Expression(sad))
    assert out is not None and out.probs == pytest.approx(mix(math.exp(-0.5), happy, sad))


@pytest.mark.parametrize(
    "probs",
    [
        (0.5, 0.5),
        (math.nan,) + (0.1,) * (N - 1),
        (math.inf,) + (0.1,) * (N - 1),
        (-0.1,) + (0.2,) * (N - 1),
        (0.0,) * N,
    ],
)
def test_bad_expression_raises_and_keeps_state(probs: tuple[float, ...]) -> None:
    s = smoother()
    with pytest.raises(ValueError):
        s.update(0.0, Expression(probs))
    assert s.current is None
    first = s.update(0.0, peaked("happy"))
    with pytest.raises(ValueError):
        s.update(0.5, Expression(probs))
    assert s.current == first


def test_smoother_has_slots() -> None:
    assert not hasattr(smoother(), "__dict__")


# -- properties -----------------------------------------------------------------------------------

taus = st.floats(0.05, 5.0)
distributions = st.lists(st.floats(0.0, 1.0), min_size=N, max_size=N).filter(
    lambda ps: math.fsum(ps) > 1e-3
)
gaps = st.floats(0.0, 1.0)
positive_gaps = st.floats(1e-3, 1.0)


def _after(start: float, steps: list[float]) -> list[float]:
    """Times start + steps[0], + steps[1], ... (non-decreasing, as floats add)."""
    out, t = [], start
    for dt in steps:
        t += dt
        out.append(t)
    return out


def _before(end: float, steps: list[float]) -> list[float]:
    """Times counting back from `end` by `steps`, returned in increasing order (end excluded)."""
    out, t = [], end
    for dt in steps:
        t -= dt
        out.append(t)
    return out[::-1]


@given(
    tau=taus,
    p0=distributions,
    p1=distributions,
    t_last=st.floats(0.0, 100.0),
    pre_a=st.lists(gaps, max_size=12),
    pre_b=st.lists(gaps, max_size=12),
    post_a=st.lists(positive_gaps, min_size=1, max_size=20),
    fractions=st.lists(st.floats(0.0, 1.0, exclude_min=True, exclude_max=True), max_size=20),
)
def test_step_response_depends_only_on_time_since_the_last_pre_step_observation(
    tau: float,
    p0: list[float],
    p1: list[float],
    t_last: float,
    pre_a: list[float],
    pre_b: list[float],
    post_a: list[float],
    fractions: list[float],
) -> None:
    """p0 held until the step, p1 after: any two schedules that share the last pre-step observation
    (t_last) and the query time agree, however many observations fall in between."""
    before, after = Expression(tuple(p0)), Expression(tuple(p1))
    post_a_times = _after(t_last, post_a)
    query = post_a_times[-1]
    post_b_times = sorted({t_last + f * (query - t_last) for f in fractions} - {t_last, query})
    results = []
    for pre, post in ((pre_a, post_a_times[:-1]), (pre_b, post_b_times)):
        s = ExpressionSmoother(tau_s=tau)
        for t in [*_before(t_last, pre), t_last]:
            s.update(t, before)
        results.append(run(s, [(t, after) for t in [*post, query]]).probs)
    keep = math.exp(-(query - t_last) / tau)
    expected = mix(keep, normalised(before.probs), normalised(after.probs))
    for probs in results:
        assert probs == pytest.approx(expected, abs=1e-9)
    assert results[0] == pytest.approx(results[1], abs=1e-9)


@given(
    tau=taus,
    steps=st.lists(st.tuples(gaps, st.none() | distributions), min_size=1, max_size=40),
)
def test_output_is_always_a_distribution(
    tau: float, steps: list[tuple[float, list[float] | None]]
) -> None:
    s = ExpressionSmoother(tau_s=tau)
    for t, (_, probs) in zip(_after(0.0, [dt for dt, _ in steps]), steps, strict=True):
        out = s.update(t, None if probs is None else Expression(tuple(probs)))
        assert out is s.current
        if out is not None:
            assert len(out.probs) == N
            assert math.fsum(out.probs) == pytest.approx(1.0, abs=1e-9)
            assert all(0.0 <= p <= 1.0 for p in out.probs)
            assert (out.valence, out.arousal) == pytest.approx(valence_arousal(out.probs))


@given(
    tau=taus,
    segments=st.lists(st.tuples(distributions, st.integers(1, 8)), min_size=1, max_size=8),
)
def test_4_and_8_fps_agree_at_common_times(
    tau: float, segments: list[tuple[list[float], int]]
) -> None:
    """A piecewise-constant signal whose steps fall just after 4 fps sample times: the 4 and 8 fps
    schedules share each step's last pre-step observation, so they agree at every 4 fps time."""
    # Segment i holds on (bounds[i], bounds[i + 1]] eighths of a second (the first also at t=0).
    bounds = [0]
    for _, quarters in segments:
        bounds.append(bounds[-1] + 2 * quarters)

    def value(eighth: int) -> Expression:
        i = next(i for i in range(len(segments)) if eighth <= bounds[i + 1])
        return Expression(tuple(segments[i][0]))

    s4, s8 = ExpressionSmoother(tau_s=tau), ExpressionSmoother(tau_s=tau)
    for j in range(bounds[-1] + 1):
        out8 = s8.update(j / 8, value(j))
        if j % 2 == 0:
            out4 = s4.update(j / 8, value(j))
            assert out4 is not None and out8 is not None
            assert out4.probs == pytest.approx(out8.probs, abs=1e-9)


@given(
    tau=taus,
    steps=st.lists(
        st.tuples(positive_gaps, distributions, st.integers(0, 3)), min_size=1, max_size=20
    ),
)
def test_missing_frames_in_between_change_nothing(
    tau: float, steps: list[tuple[float, list[float], int]]
) -> None:
    """None (face missing) at any times between observations is the same as no frame at all."""
    plain, gappy = ExpressionSmoother(tau_s=tau), ExpressionSmoother(tau_s=tau)
    t = 0.0
    for dt, probs, missing in steps:
        t += dt
        e = Expression(tuple(probs))
        assert plain.update(t, e) == gappy.update(t, e)
        for k in range(1, missing + 1):
            assert gappy.update(t + dt * k / (missing + 1), None) == plain.current
        t += dt
    assert plain.current == gappy.current
