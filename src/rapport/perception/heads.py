"""What the session needs of each head, whichever pack provides it."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

import numpy as np
from numpy.typing import NDArray

from rapport.frames import Box, Expression, TextScore, Utterance


class ExpressionHead(Protocol):
    @property
    def name(self) -> str: ...

    def classify(
        self, rgb: NDArray[np.uint8], boxes: Sequence[Box], stream: str = ""
    ) -> list[Expression | None]:
        """One Expression per box, in order; None where the head dropped it under load."""
        ...


class TextHead(Protocol):
    @property
    def name(self) -> str: ...

    def score(self, utt: Utterance) -> TextScore: ...


class VoiceHead(Protocol):
    @property
    def name(self) -> str: ...

    def score(self, samples: NDArray[np.float32]) -> tuple[float, float, float] | None:
        """(valence, arousal, confidence) of one speech segment; None when it cannot say."""
        ...
