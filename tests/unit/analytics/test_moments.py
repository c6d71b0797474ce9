from rapport.analytics.moments import engagement_moments
from rapport.analytics.windows import WindowResult


def _window(i: int, engagement: float | None) -> WindowResult:
    return WindowResult(i, i * 5.0, i * 5.0 + 5, {}, engagement, None, None, 1.0, 0.0, None)


def test_adjacent_peaks_are_one_moment_and_the_dip_is_named() -> None:
    values = [0.5, 0.8, 0.82, 0.5, 0.3, 0.5, 0.79, 0.5]
    moments = engagement_moments([_window(i, v) for i, v in enumerate(values)])
    peaks = [
        (m.media_time.start, m.media_time.end, m.value)
        for m in moments
        if m.kind == "engagement_peak"
    ]
    assert peaks == [(5.0, 15.0, 0.82), (30.0, 35.0, 0.79)]
    [dip] = [m for m in moments if m.kind == "engagement_dip"]
    assert (dip.media_time.start, dip.value) == (20.0, 0.3)


def test_flat_or_missing_engagement_has_no_moments() -> None:
    assert engagement_moments([_window(i, 0.6) for i in range(6)]) == []
    assert engagement_moments([_window(0, None), _window(1, 0.9)]) == []
