import math

import pytest

from rapport.analytics.windows import WindowAggregator, evenness, slope_per_minute
from rapport.config import Settings, WindowSettings
from rapport.frames import FrameSummary, SpeechSegment, TextScore


def _settings(seconds: float = 5.0) -> Settings:
    return Settings(window=WindowSettings(seconds=seconds))


def _frame(t: float, who: str | None = "ann", faces: int = 1, valence: float = 0.5) -> FrameSummary:
    return FrameSummary(
        who,
        t,
        faces,
        1.0 if faces else 0.0,
        valence if faces else None,
        0.2 if faces else None,
        0.6 if faces else None,
    )


def test_windows_close_in_order_only_once_the_watermark_passes() -> None:
    agg = WindowAggregator(_settings())
    for i in range(24):  # 6 s at 4 fps
        agg.add_frame(_frame(i / 4))
    assert agg.advance(4.9) == []
    closed = agg.advance(6.0)
    assert [(w.index, w.start, w.end) for w in closed] == [(0, 0.0, 5.0)]
    assert closed[0].participants["ann"].faces == pytest.approx(1.0)
    rest = agg.flush(6.0)
    assert [(w.index, w.end) for w in rest] == [(1, 6.0)]


def test_items_for_a_closed_window_are_counted_late_not_reemitted() -> None:
    agg = WindowAggregator(_settings())
    agg.add_frame(_frame(1.0))
    agg.advance(5.0)
    agg.add_frame(_frame(2.0))
    assert agg.late == 1
    assert [w.index for w in agg.flush(7.0)] == [1]


def test_missing_face_modality_leaves_fusion_to_the_others() -> None:
    agg = WindowAggregator(_settings())
    for i in range(20):
        agg.add_frame(_frame(i / 4, faces=0))  # camera on, nobody in view
    agg.add_text(TextScore("ann", 1.0, 3.0, valence=-0.6, arousal=0.1, confidence=0.9))
    [w] = agg.flush(5.0)
    r = w.participants["ann"]
    assert r.affect.valence == pytest.approx(-0.6)  # not pulled toward 0 by an imputed face
    assert "face" not in r.affect.modalities
    assert r.engagement.attention == 0.0


def test_speech_spanning_windows_is_split_and_turns_counted_at_start() -> None:
    agg = WindowAggregator(_settings())
    agg.add_speech(SpeechSegment("ann", 3.0, 7.0, arousal=0.4, confidence=1.0))
    agg.add_speech(SpeechSegment("bob", 7.5, 9.0, arousal=None, confidence=0.0))
    agg.add_speech(SpeechSegment("ann", 9.2, 9.8, arousal=None, confidence=0.0))
    w0, w1 = agg.flush(10.0)
    assert w0.participants["ann"].speaking_share == pytest.approx(2 / 5)
    assert w0.participants["ann"].turns == 1
    assert w1.participants["ann"].speaking_share == pytest.approx((2 + 0.6) / 5)
    assert w1.participants["ann"].turns == 1  # ann again after bob spoke: a new turn
    assert w1.participants["bob"].turns == 1
    assert w1.silence_share == pytest.approx(1 - (2 + 1.5 + 0.6) / 5)
    assert w1.evenness is not None and 0 < w1.evenness < 1


def test_a_live_silent_microphone_makes_its_owner_part_of_the_window() -> None:
    agg = WindowAggregator(_settings())
    agg.add_presence("ann", 0.0, 5.0)
    agg.add_presence("bob", 0.0, 5.0)
    agg.add_speech(SpeechSegment("ann", 1.0, 4.0, arousal=None, confidence=0.0))
    [w] = agg.flush(5.0)
    assert set(w.participants) == {"ann", "bob"}
    assert w.participants["bob"].speaking_share == 0.0
    assert w.evenness == pytest.approx(0.0)  # one of two people holds the floor
    # share 0.6 is above a fair 0.5 (capped at 1), one turn of two: 0.8 * 1 + 0.2 * 0.5
    assert w.participants["ann"].engagement.participation == pytest.approx(0.9)


def test_short_tail_joins_the_last_window_when_the_duration_is_known() -> None:
    agg = WindowAggregator(_settings(), duration=11.5)
    for i in range(46):
        agg.add_frame(_frame(i / 4))
    assert [w.end for w in agg.advance(11.5)] == [5.0]  # the last window waits for the tail
    [last] = agg.flush(11.5)
    assert (last.start, last.end) == (5.0, 11.5)
    assert last.participants["ann"].faces == pytest.approx(1.0)
    agg2 = WindowAggregator(_settings(), duration=13.0)
    assert [(w.start, w.end) for w in agg2.flush(13.0)] == [(0, 5), (5, 10), (10, 13)]


def test_text_far_past_the_duration_stays_bounded() -> None:
    agg = WindowAggregator(_settings(), duration=12.0)
    agg.add_text(TextScore("ann", 1.0, 1e12, valence=0.5, arousal=0.1, confidence=0.9))
    assert len(agg.flush(12.0)) == 2


def test_unattributed_speech_only_fills_the_silence() -> None:
    agg = WindowAggregator(_settings())
    agg.add_presence("ann", 0.0, 5.0)
    agg.add_room_speech(1.0, 3.0)
    [w] = agg.flush(5.0)
    assert w.silence_share == pytest.approx(0.6)
    assert set(w.participants) == {"ann"}
    assert w.participants["ann"].speaking_share == 0.0


def test_room_camera_frames_count_for_the_room_not_a_person() -> None:
    agg = WindowAggregator(_settings())
    agg.add_presence("ann", 0.0, 5.0)
    for i in range(20):
        agg.add_frame(_frame(i / 4, who=None, faces=3, valence=0.6))
    [w] = agg.flush(5.0)
    assert set(w.participants) == {"ann"}
    assert w.participants["ann"].faces == 0.0
    assert w.room_faces == pytest.approx(3.0)
    assert w.room_valence == pytest.approx(0.6)  # the camera's faces, ann has no valence
    assert w.room_engagement is not None
    assert w.room_engagement > w.participants["ann"].engagement.score


def test_speech_in_a_short_last_window_counts_to_the_end_of_the_media() -> None:
    # Issue 10 (1): a 12 s recording's last window is [5, 12); speech at 10.4-11.8 s lies past
    # the nominal end (10 s). It was clipped to a negative span: silence share above 1.
    agg = WindowAggregator(_settings(), duration=12.0)
    agg.add_presence("ann", 0.0, 12.0)
    agg.add_speech(SpeechSegment("ann", 10.4, 11.8, arousal=None, confidence=0.0))
    w0, w1 = agg.flush(12.0)
    assert (w1.start, w1.end) == (5.0, 12.0)
    assert w1.silence_share == pytest.approx(1 - 1.4 / 7)
    assert w1.participants["ann"].speaking_share == pytest.approx(1.4 / 7)
    assert w0.silence_share == 1.0


def test_speech_across_the_nominal_end_of_a_short_last_window() -> None:
    # Speech 6-11.5 s of a 12 s recording: 5.5 s of the last window's 7 s.
    agg = WindowAggregator(_settings(), duration=12.0)
    agg.add_speech(SpeechSegment("ann", 6.0, 11.5, arousal=None, confidence=0.0))
    [_, last] = agg.flush(12.0)
    assert last.silence_share == pytest.approx(1 - 5.5 / 7)


def test_speech_is_counted_up_to_where_a_session_ended_mid_window() -> None:
    # Found by the windows machine: a session stopped at 4 s while a segment ran on to 4.5 s
    # was scored 2.5 s of speech in a 4 s window (0.625), not 2 s (0.5).
    agg = WindowAggregator(_settings())
    agg.add_speech(SpeechSegment("ann", 2.0, 4.5, arousal=None, confidence=0.0))
    [w] = agg.flush(4.0)
    assert w.participants["ann"].speaking_share == pytest.approx(0.5)
    assert w.silence_share == pytest.approx(0.5)


def test_a_span_starting_a_float_hair_before_a_boundary_is_not_presence_before_it() -> None:
    # Media times are sums of chunk lengths: bob's microphone, on from 7 s, sends its first chunk
    # at 6.999999999999999 s. A nanosecond of overlap is float error: he was not in [6, 7).
    agg = WindowAggregator(_settings(seconds=1.0))
    agg.add_presence("ann", 0.0, 7.5)
    agg.add_presence("bob", math.nextafter(7.0, 0.0), 7.5)
    *_, w6, w7 = agg.flush(7.5)
    assert set(w6.participants) == {"ann"} and set(w7.participants) == {"ann", "bob"}


def test_someone_who_left_is_absent_from_later_windows_not_scored_zero() -> None:
    agg = WindowAggregator(_settings())
    for t in (0.0, 5.0):
        agg.add_presence("ann", t, t + 5.0)
        for i in range(20):
            agg.add_frame(_frame(t + i / 4, who="ann"))
    agg.add_presence("bob", 0.0, 5.0)  # bob leaves after the first window
    for i in range(20):
        agg.add_frame(_frame(i / 4, who="bob"))
    w0, w1 = agg.flush(10.0)
    assert set(w0.participants) == {"ann", "bob"}
    assert set(w1.participants) == {"ann"}
    assert w1.room_engagement == pytest.approx(w1.participants["ann"].engagement.score)


def test_forgetting_a_person_removes_their_speech_from_the_open_window() -> None:
    agg = WindowAggregator(_settings())
    agg.add_speech(SpeechSegment("ann", 0.0, 4.0, arousal=None, confidence=0.0))
    agg.add_speech(SpeechSegment("bob", 4.0, 5.0, arousal=None, confidence=0.0))
    agg.forget("ann")
    [w] = agg.flush(5.0)
    assert set(w.participants) == {"bob"}
    assert w.silence_share == pytest.approx(0.8)  # ann's 4 s of speech went with her


def test_evenness_and_slope() -> None:
    assert evenness({"a": 0.3, "b": 0.3}) == pytest.approx(1.0)
    assert evenness({"a": 0.5, "b": 0.0}) == pytest.approx(0.0)
    assert evenness({"a": 0.5}) is None
    assert slope_per_minute([0, 30, 60], [0.2, 0.35, 0.5]) == pytest.approx(0.3)
    assert slope_per_minute([5], [0.4]) is None
    assert math.isclose(slope_per_minute([5, 10], [0.5, 0.5]) or 0.0, 0.0)


def test_window_below_one_second_is_refused() -> None:
    with pytest.raises(ValueError):
        WindowSettings(seconds=0.5)
