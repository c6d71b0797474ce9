import pytest

from rapport.analytics.shifts import SentimentShiftDetector


def test_shift_fires_once_per_crossing_and_rebases() -> None:
    d = SentimentShiftDetector(delta=0.3, alpha=1.0)
    fired = [d.update(v) for v in [0.5, 0.45, 0.4, 0.1, 0.1, 0.12, 0.5]]
    shifts = [s for s in fired if s is not None]
    assert len(shifts) == 2
    assert shifts[0].from_valence == pytest.approx(0.5)
    assert shifts[0].to_valence == pytest.approx(0.1)
    assert shifts[1].delta == pytest.approx(0.4)


def test_missing_valence_is_skipped_not_imputed() -> None:
    d = SentimentShiftDetector(delta=0.3, alpha=1.0)
    assert d.update(0.5) is None
    assert d.update(None) is None
    assert d.update(0.45) is None  # a None taken as 0 would have fired


def test_single_window_noise_is_smoothed_away() -> None:
    d = SentimentShiftDetector(delta=0.3, alpha=0.5)
    assert [d.update(v) for v in [0.4, 0.4, -0.1, 0.4, 0.4]] == [None] * 5


@pytest.mark.parametrize("delta", [0.0, -0.1, 2.5])
def test_bad_delta(delta: float) -> None:
    with pytest.raises(ValueError):
        SentimentShiftDetector(delta)
