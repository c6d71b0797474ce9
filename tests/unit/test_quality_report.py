"""The quality report's measures (scripts/quality/): word error rate, VAD boundary matching,
class flips and agreement, on hand-worked cases."""

from __future__ import annotations

import math

import numpy as np
import pytest

from scripts.quality.speech_scoring import (
    WerTally,
    edit_counts,
    match_segments,
    speech_span,
    words,
)
from scripts.quality.stats import cohen_kappa, flips


def test_words_drop_tags_ids_and_punctuation_but_keep_apostrophes() -> None:
    assert words("<s> Don't STOP, now! </s> (utt-0870)") == ["don't", "stop", "now"]
    assert words("") == []


@pytest.mark.parametrize(
    ("ref", "hyp", "counts"),
    [
        ("a b c", "a b c", (0, 0, 0)),
        ("a b c", "a x c", (1, 0, 0)),
        ("a b c", "a c", (0, 1, 0)),
        ("a b c", "a b c d", (0, 0, 1)),
        ("", "a b", (0, 0, 2)),
        ("a b", "", (0, 2, 0)),
        ("the cat sat", "cat sat down", (0, 1, 1)),
    ],
)
def test_edit_counts(ref: str, hyp: str, counts: tuple[int, int, int]) -> None:
    assert edit_counts(ref.split(), hyp.split()) == counts


def test_wer_pools_over_utterances() -> None:
    tally = WerTally()
    assert tally.add("good morning everyone", "the morning everyone") == 1  # a substitution
    assert tally.add("ten of clubs", "ten of clubs") == 0
    assert tally.add("", "uh") == 1  # speech heard where there was none: an insertion
    assert (tally.ref_words, tally.subs, tally.dels, tally.ins) == (6, 1, 0, 1)
    assert tally.wer == pytest.approx(2 / 6)
    assert math.isnan(WerTally().wer)
    pooled = WerTally()
    pooled.merge(tally)
    pooled.merge(tally)
    assert (pooled.ref_words, pooled.subs, pooled.dels, pooled.ins) == (12, 2, 0, 2)


def test_match_segments_errors_pieces_misses_and_false_alarms() -> None:
    truth = [(1.0, 2.0), (4.0, 5.0), (8.0, 9.0)]
    segments = [(1.1, 1.5), (1.6, 2.3), (3.0, 3.2), (3.9, 5.0)]
    got = match_segments(truth, segments)
    assert got.start_err == pytest.approx([0.1, -0.1])
    assert got.end_err == pytest.approx([0.3, 0.0])
    assert got.pieces == [2, 1]
    assert (got.missed, got.false_alarms) == (1, 1)
    assert got.false_alarm_s == pytest.approx(0.2)


def test_speech_span_finds_the_loud_part() -> None:
    rate = 16000
    rng = np.random.default_rng(0)
    x = rng.normal(0, 1e-4, rate * 2).astype(np.float32)
    x[8000:24000] += 0.3 * np.sin(np.arange(16000) * 0.1).astype(np.float32)
    start, end = speech_span(x, rate)
    assert start == pytest.approx(0.5, abs=0.011)
    assert end == pytest.approx(1.5, abs=0.011)


def test_flips_and_kappa() -> None:
    assert flips([3, 3, 6, 6, 3]) == 2
    assert flips([]) == 0
    assert cohen_kappa([0, 1, 0, 1], [0, 1, 0, 1], 2) == pytest.approx(1.0)
    assert cohen_kappa([0, 0, 1, 1], [0, 1, 0, 1], 2) == pytest.approx(0.0)
    assert math.isnan(cohen_kappa([], [], 7))
