import pytest

from rapport.labels import EXPRESSIONS, VALENCE_AROUSAL, valence_arousal


def test_table_is_total_and_bounded() -> None:
    assert set(VALENCE_AROUSAL) == set(EXPRESSIONS)
    for v, a in VALENCE_AROUSAL.values():
        assert -1 <= v <= 1 and -1 <= a <= 1


def test_expected_valence_orders_expressions() -> None:
    def one_hot(label: str) -> list[float]:
        return [1.0 if c == label else 0.0 for c in EXPRESSIONS]

    assert valence_arousal(one_hot("happy"))[0] > valence_arousal(one_hot("neutral"))[0]
    assert valence_arousal(one_hot("neutral"))[0] > valence_arousal(one_hot("sad"))[0]
    assert valence_arousal([1 / 7] * 7)[0] == pytest.approx(
        sum(v for v, _ in VALENCE_AROUSAL.values()) / 7
    )
    with pytest.raises(ValueError):
        valence_arousal([0.5, 0.5])
