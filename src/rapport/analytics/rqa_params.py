"""CRQA's parameters, apart from the maths (no numpy): the CLI's parser reads their defaults
without loading it at every `rapport` start."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

Metric = Literal["euclidean", "maximum"]


@dataclass(frozen=True, slots=True)
class RqaParams:
    """embedding m >= 1, delay d >= 1 (samples), radius > 0 (in the series' units: z-scores when
    standardised), theiler w >= 0 (0: no band removed), min_line >= 1 (lmin, for diagonal and
    vertical lines)."""

    embedding: int = 3
    delay: int = 1
    radius: float = 0.5
    theiler: int = 0
    min_line: int = 2
    metric: Metric = "euclidean"

    def __post_init__(self) -> None:
        if self.embedding < 1:
            raise ValueError(f"embedding must be >= 1, got {self.embedding}")
        if self.delay < 1:
            raise ValueError(f"delay must be >= 1, got {self.delay}")
        if not (math.isfinite(self.radius) and self.radius > 0):
            raise ValueError(f"radius must be a finite number > 0, got {self.radius}")
        if self.theiler < 0:
            raise ValueError(f"theiler must be >= 0, got {self.theiler}")
        if self.min_line < 1:
            raise ValueError(f"min_line must be >= 1, got {self.min_line}")
        if self.metric not in ("euclidean", "maximum"):
            raise ValueError(f"metric must be 'euclidean' or 'maximum', got {self.metric!r}")

    @property
    def span(self) -> int:
        """Samples one embedded vector covers: (m - 1) * d + 1."""
        return (self.embedding - 1) * self.delay + 1
