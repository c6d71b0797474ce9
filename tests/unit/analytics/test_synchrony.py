"""The live synchrony tracker: who takes part, who leads, what each reporting level lets out."""

from __future__ import annotations

import numpy as np
import pytest

from rapport.analytics.synchrony import MIN_SPAN_S, SynchronyTracker
from rapport.config import SynchronySettings
from rapport.events.schema import SynchronyWindowData
from rapport.frames import FrameSummary
from rapport.invariants import find_person

FPS = 4.0


def _frame(who: str, t: float, valence: float | None, faces: int = 1) -> FrameSummary:
    return FrameSummary(who, t, faces, 1.0, valence, 0.0, 0.5)


def _feed(
    tracker: SynchronyTracker, series: dict[str, np.ndarray], *, present: float = 1.0
) -> None:
    """Series of valence at FPS from media time 0; `present`: the share of frames with a face
    (the rest, at the end of each second, have none)."""
    for who, values in series.items():
        for k, v in enumerate(values):
            seen = (k % FPS) < present * FPS
            tracker.add(_frame(who, k / FPS, float(v) if seen else None, faces=int(seen)))


def _led(seconds: float, lag_s: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """A smooth random signal, and the same signal `lag_s` later with a little noise."""
    rng = np.random.default_rng(seed)
    n, lag = round(seconds * FPS), round(lag_s * FPS)
    raw = np.convolve(rng.normal(size=n + lag + 8), np.ones(8) / 8, mode="valid")[: n + lag]
    lead = raw[lag:]
    follow = raw[:n] + rng.normal(scale=0.05, size=n)
    return np.tanh(lead), np.tanh(follow)


def test_a_follower_one_second_behind_is_found_with_its_lag() -> None:
    tracker = SynchronyTracker(SynchronySettings(), FPS)
    ann, bob = _led(60, 1.0, seed=1)
    _feed(tracker, {"ann": ann, "bob": bob})
    out = tracker.window(60.0, "participant", 3)
    assert out is not None
    start, data = out
    assert start == 0.0
    (pair,) = data.pairs
    assert {pair.a, pair.b} == {"ann", "bob"}
    assert pair.leader == "ann" and pair.lag_s == pytest.approx(1.0)
    assert data.room.participants == 2 and data.room.pairs == 1
    assert data.room.led_share == 1.0
    assert data.room.lag_s is not None and data.room.lag_s.median == pytest.approx(1.0)
    assert 0 < pair.rr < 1 and 0 < pair.det <= 1
    assert data.parameters.delay_s == 0.5 and data.parameters.max_lag_s == 5.0


def test_independent_people_have_no_clear_leader_and_lower_determinism() -> None:
    tracker = SynchronyTracker(SynchronySettings(), FPS)
    ann, _ = _led(60, 1.0, seed=2)
    bob, _ = _led(60, 1.0, seed=3)
    _feed(tracker, {"ann": ann, "bob": bob})
    out = tracker.window(60.0, "participant", 3)
    assert out is not None
    (pair,) = out[1].pairs
    assert pair.leader is None and pair.lag_s is None and out[1].room.lag_s is None

    coupled = SynchronyTracker(SynchronySettings(), FPS)
    a, b = _led(60, 1.0, seed=2)
    _feed(coupled, {"ann": a, "bob": b})
    led = coupled.window(60.0, "participant", 3)
    assert led is not None and led[1].pairs[0].det > pair.det


def test_the_span_slides_and_nothing_older_is_kept() -> None:
    tracker = SynchronyTracker(SynchronySettings(window_s=30), FPS)
    ann, bob = _led(90, 0.5, seed=4)
    _feed(tracker, {"ann": ann, "bob": bob})
    out = tracker.window(90.0, "participant", 3)
    assert out is not None and out[0] == 60.0
    assert all(t >= 60.0 for q in tracker._series.values() for t, _ in q)


def test_no_synchrony_before_the_shortest_span_or_for_one_person() -> None:
    tracker = SynchronyTracker(SynchronySettings(), FPS)
    ann, bob = _led(60, 1.0, seed=5)
    _feed(tracker, {"ann": ann[: round(MIN_SPAN_S * FPS)], "bob": bob[: round(MIN_SPAN_S * FPS)]})
    assert tracker.window(MIN_SPAN_S - 5, "participant", 3) is None
    first = tracker.window(MIN_SPAN_S, "participant", 3)
    assert first is not None and first[0] == 0.0 and first[1].room.pairs == 1

    alone = SynchronyTracker(SynchronySettings(), FPS)
    _feed(alone, {"ann": ann})
    assert alone.window(60.0, "participant", 1) is None


def test_someone_whose_face_is_seen_too_little_takes_no_part() -> None:
    tracker = SynchronyTracker(SynchronySettings(min_coverage=0.75), FPS)
    series = {who: _led(60, 1.0, seed=k)[0] for k, who in enumerate(("ann", "bob", "cat"))}
    _feed(tracker, {"ann": series["ann"], "bob": series["bob"]})
    _feed(tracker, {"cat": series["cat"]}, present=0.5)
    out = tracker.window(60.0, "participant", 3)
    assert out is not None
    assert out[1].room.participants == 2
    assert {p for pair in out[1].pairs for p in (pair.a, pair.b)} == {"ann", "bob"}


def _three() -> SynchronyTracker:
    tracker = SynchronyTracker(SynchronySettings(), FPS)
    people = ("user-a", "user-b", "user-c")
    _feed(tracker, {who: _led(60, 1.0, seed=10 + k)[0] for k, who in enumerate(people)})
    return tracker


def test_room_reporting_lets_out_the_room_numbers_only() -> None:
    out = _three().window(60.0, "room", 3)
    assert out is not None
    data = out[1]
    assert data.pairs == [] and data.room.withheld is None
    # The room's numbers are those over the same pairs with participant reporting.
    shown = _three().window(60.0, "participant", 3)
    assert shown is not None and len(shown[1].pairs) == 3
    assert data.room == shown[1].room
    assert "user-" not in data.model_dump_json()


def test_room_reporting_below_the_minimum_withholds_the_numbers() -> None:
    out = _three().window(60.0, "room", 4)
    assert out is not None
    room = out[1].room
    assert room.withheld == "fewer_than_min_participants"
    assert (room.rr, room.det, room.led_share, room.lag_s) == (None, None, None, None)
    assert out[1].pairs == []


def test_forget_leaves_nothing_of_the_person() -> None:
    tracker = _three()
    tracker.forget("user-b")
    assert find_person(tracker, "user-b") == []
    out = tracker.window(60.0, "participant", 3)
    assert out is not None and out[1].room.participants == 2


def test_the_payload_validates_and_survives_serialisation() -> None:
    out = _three().window(60.0, "participant", 3)
    assert out is not None
    again = SynchronyWindowData.model_validate_json(out[1].model_dump_json())
    assert again == out[1] and len(again.pairs) == 3


# -- found in review (each failed on the tracker before its fix) ---------------------------------


def test_a_still_face_takes_no_part() -> None:
    # A frozen camera's smoothed valence is flat up to rounding: it read as perfect synchrony.
    tracker = SynchronyTracker(SynchronySettings(), FPS)
    still = 0.3 + np.array([0.0, 5.551115123125783e-17] * 120)
    _feed(tracker, {"ann": still, "bob": _led(60, 1.0, 21)[0], "cy": _led(60, 1.0, 22)[0]})
    out = tracker.window(60.0, "participant", 3)
    assert out is not None
    assert out[1].room.participants == 2
    assert {p for pair in out[1].pairs for p in (pair.a, pair.b)} == {"bob", "cy"}


def test_someone_who_left_is_not_carried_on_by_filling() -> None:
    # Bob's camera went off 14 s before the end: 77 % coverage kept him in, filled flat.
    tracker = SynchronyTracker(SynchronySettings(), FPS)
    ann, bob = _led(60, 1.0, seed=23)
    _feed(tracker, {"ann": ann, "bob": bob[: 46 * 4], "cy": _led(60, 1.0, 24)[0]})
    out = tracker.window(60.0, "participant", 3)
    assert out is not None and out[1].room.participants == 2
    assert all("bob" not in (p.a, p.b) for p in out[1].pairs)


def test_pairs_are_named_in_id_order_whoever_came_first() -> None:
    tracker = SynchronyTracker(SynchronySettings(), FPS)
    zed, amy = _led(60, 1.0, seed=25)
    _feed(tracker, {"zed": zed, "amy": amy})
    out = tracker.window(60.0, "participant", 3)
    assert out is not None and (out[1].pairs[0].a, out[1].pairs[0].b) == ("amy", "zed")
    assert out[1].pairs[0].leader == "zed"


def test_the_number_compared_and_the_grid_rate_are_bounded() -> None:
    tracker = SynchronyTracker(SynchronySettings(max_participants=3, min_coverage=0.5), 10.0)
    fps10 = {f"p{k}": _led(60, 1.0, seed=30 + k)[0] for k in range(5)}
    for who, values in fps10.items():
        for k in range(600):  # 10 fps; p0 and p1 lose their face 1 s in every 3
            seen = who not in ("p0", "p1") or k % 30 >= 10
            v = float(values[int(k / 10 * FPS)]) if seen else None
            tracker.add(_frame(who, k / 10, v, faces=int(bool(seen))))
    out = tracker.window(60.0, "participant", 3)
    assert out is not None
    data = out[1]
    assert data.parameters.sample_rate_hz == 4.0  # CRQA's cost is the square of the samples
    assert data.room.participants == 3 and data.room.pairs == 3
    assert {p for pair in data.pairs for p in (pair.a, pair.b)} == {"p2", "p3", "p4"}


def test_after_a_resume_no_span_reaches_into_the_gap() -> None:
    tracker = SynchronyTracker(SynchronySettings(), FPS)
    tracker.restart(30.0)
    ann, bob = _led(90, 1.0, seed=26)
    _feed(tracker, {"ann": ann, "bob": bob})
    assert tracker.window(45.0, "participant", 3) is None  # 15 s since the resume: too short
    out = tracker.window(60.0, "participant", 3)
    assert out is not None and out[0] == 30.0
