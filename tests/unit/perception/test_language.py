"""TextSentiment (VADER) on sentences whose polarity and intensity are not in doubt."""

from __future__ import annotations

import pytest

from rapport.frames import TextScore, Utterance
from rapport.perception.language import TextSentiment


@pytest.fixture(scope="module")
def text() -> TextSentiment:
    return TextSentiment()


def score(text: TextSentiment, line: str) -> TextScore:
    return text.score(Utterance("p1", 3.0, 4.5, line))


def test_positive_and_negative_sentences(text: TextSentiment):
    pos = score(text, "I really love this idea, it is wonderful and exciting.")
    neg = score(text, "This is terrible, I hate how broken and useless it is.")
    assert pos.valence > 0.3
    assert neg.valence < -0.3
    assert pos.confidence > 0.5 and neg.confidence > 0.5
    assert (pos.participant, pos.start, pos.end) == ("p1", 3.0, 4.5)
    assert text.name == "vader"


def test_negation_flips_valence(text: TextSentiment):
    assert score(text, "I am happy with this").valence > 0.3
    assert score(text, "I am not happy with this").valence < -0.3


def test_neutral_fact_is_near_zero_with_low_confidence(text: TextSentiment):
    s = score(text, "The meeting starts at three in the main building.")
    assert abs(s.valence) < 0.2
    assert s.arousal < 0.1
    assert s.confidence <= 0.15


def test_exclamations_and_capitals_raise_arousal(text: TextSentiment):
    plain, shouted = score(text, "great"), score(text, "GREAT!!!")
    assert shouted.arousal > plain.arousal + 0.2
    assert 0.0 <= plain.arousal < shouted.arousal <= 1.0


def test_confidence_grows_with_lexicon_hits(text: TextSentiment):
    one = score(text, "The plan is good.")
    three = score(text, "The plan is good, clear and exciting.")
    assert 0.1 < one.confidence < three.confidence < 1.0


def test_no_words_means_no_confidence(text: TextSentiment):
    for line in ("", "   ", "... 42"):
        s = score(text, line)
        assert (s.valence, s.arousal, s.confidence) == (0.0, 0.0, 0.0)
