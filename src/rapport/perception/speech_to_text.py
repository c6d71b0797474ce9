"""Offline speech recognition of one speech segment, with the en-us model pocketsphinx ships.

Used where the room gives no transcription of its own. Accuracy is modest (it is a 2010s HMM
recogniser), which is enough for the text head's lexicon-based sentiment. Decoding is blocking and
the decoder is not thread-safe: run one instance per worker thread.
"""

from __future__ import annotations

import math
import re
from typing import ClassVar, Final

import numpy as np
from numpy.typing import NDArray
from pocketsphinx import Decoder

from rapport.frames import SAMPLE_RATE, Utterance

MIN_LEVEL_DBFS: Final = -50.0
"""Quieter segments are not decoded: the decoder hallucinates short words in digital silence."""

_FILLER: Final = re.compile(r"^(<.*>|\[.*\])$")  # <s>, </s>, <sil>, [NOISE], [SPEECH], ...
_ALTERNATE: Final = re.compile(r"\(\d+\)$")  # "recognizes(2)": a pronunciation variant


class SpeechToText:
    """Transcribes 16 kHz float32 speech segments; the decoder loads once, in __init__."""

    NAME: ClassVar[str] = "pocketsphinx-en-us"

    def __init__(self) -> None:
        self._decoder = Decoder(loglevel="FATAL")

    @property
    def name(self) -> str:
        return self.NAME

    def transcribe(
        self, participant: str, start: float, samples: NDArray[np.float32]
    ) -> Utterance | None:
        """The words of one segment starting at media time `start`; None when none are heard."""
        if len(samples) == 0 or _level_dbfs(samples) < MIN_LEVEL_DBFS:
            return None
        pcm = (np.clip(samples, -1.0, 1.0) * 32767.0).astype(np.int16)
        d = self._decoder
        d.start_utt()
        d.process_raw(pcm.tobytes(), full_utt=True)
        d.end_utt()
        words = [_ALTERNATE.sub("", s.word) for s in d.seg() if not _FILLER.match(s.word)]
        if not words:
            return None
        end = start + len(samples) / SAMPLE_RATE
        return Utterance(participant, start, end, " ".join(words))


def _level_dbfs(samples: NDArray[np.float32]) -> float:
    rms = float(np.sqrt(np.mean(np.square(samples, dtype=np.float64))))
    return 20.0 * math.log10(rms) if rms > 0 else -math.inf
