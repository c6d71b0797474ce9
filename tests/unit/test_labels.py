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


def test_every_reference_head_label_maps_into_the_fusion_space() -> None:
    from rapport.labels import EXPRESSIONS, expression_map, to_expressions

    reference = {
        "trpakov/vit-face-expression": (
            "angry",
            "disgust",
            "fear",
            "happy",
            "neutral",
            "sad",
            "surprise",
        ),
        "superb/wav2vec2-base-superb-er": ("neu", "hap", "ang", "sad"),
        "j-hartmann/emotion-english-distilroberta-base": (
            "anger",
            "disgust",
            "fear",
            "joy",
            "neutral",
            "sadness",
            "surprise",
        ),
    }
    for labels in reference.values():
        mapping = expression_map(labels)
        assert len(mapping) == len(labels)
        probs = to_expressions([1 / len(labels)] * len(labels), mapping)
        assert len(probs) == len(EXPRESSIONS) and abs(sum(probs) - 1) < 1e-9
    assert [EXPRESSIONS[i] for i in expression_map(("joy", "Sadness ", "neu"))] == [
        "happy",
        "sad",
        "neutral",
    ]


def test_an_unknown_label_is_refused() -> None:
    import pytest

    from rapport.labels import expression_map

    with pytest.raises(ValueError, match="bored"):
        expression_map(("happy", "bored"))
