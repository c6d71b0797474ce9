"""Text head: valence, arousal and confidence of one utterance, from VADER.

- valence = VADER's compound score (-1..1).
- arousal is a heuristic from intensity cues, each in 0..1::

      arousal = 0.45 |compound| + 0.25 (pos + neg) + 0.2 min(#"!", 3) / 3
                + 0.1 min(#ALL-CAPS words, 2) / 2

  so it stays in 0..1: a flat factual line sits at 0, like a neutral face (labels.py), and
  "GREAT!!!" at about 0.8. Text shows intensity, not calm, so it never pulls arousal below neutral.
- confidence = 0.1 + 0.85 (1 - exp(-hits / 2)), hits = words found in VADER's lexicon (0.1 with
  none, 0.64 with two, saturating near 0.95); 0 for an utterance with no words at all.
"""

from __future__ import annotations

import math
import re
from typing import Final

from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

from rapport.frames import TextScore, Utterance

_WORD: Final = re.compile(r"[A-Za-z][A-Za-z']*")


class TextSentiment:
    """Scores utterances with VADER; the lexicon loads once, in __init__."""

    def __init__(self) -> None:
        self._vader = SentimentIntensityAnalyzer()
        self._lexicon: dict[str, float] = self._vader.lexicon

    @property
    def name(self) -> str:
        return "vader"

    def score(self, utt: Utterance) -> TextScore:
        words = _WORD.findall(utt.text)
        if not words:
            return TextScore(utt.participant, utt.start, utt.end, 0.0, 0.0, 0.0)
        polarity: dict[str, float] = self._vader.polarity_scores(utt.text)
        compound = polarity["compound"]
        caps = sum(1 for w in words if len(w) > 1 and w.isupper())
        arousal = (
            0.45 * abs(compound)
            + 0.25 * (polarity["pos"] + polarity["neg"])
            + 0.2 * min(utt.text.count("!"), 3) / 3
            + 0.1 * min(caps, 2) / 2
        )
        hits = sum(1 for w in words if w.lower() in self._lexicon)
        confidence = 0.1 + 0.85 * (1.0 - math.exp(-hits / 2))
        return TextScore(utt.participant, utt.start, utt.end, compound, arousal, confidence)
