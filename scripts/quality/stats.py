"""Small statistics the sections share: percentiles, medians, class flips, Cohen's kappa."""

from __future__ import annotations

import math
import statistics
from collections import Counter
from collections.abc import Sequence
from itertools import pairwise

import numpy as np


def pct(values: Sequence[float], q: float) -> float:
    return float(np.percentile(np.asarray(values, np.float64), q)) if len(values) else math.nan


def median(values: Sequence[float]) -> float:
    """The median, nan when there are no values."""
    return statistics.median(values) if values else math.nan


def flips(labels: Sequence[int]) -> int:
    """How many times a sequence of class indices changes value."""
    return sum(1 for a, b in pairwise(labels) if a != b)


def cohen_kappa(a: Sequence[int], b: Sequence[int], classes: int) -> float:
    """Cohen's kappa of two raters' labels over `classes` classes (nan when undefined)."""
    n = len(a)
    if n == 0 or n != len(b):
        return math.nan
    po = sum(1 for x, y in zip(a, b, strict=True) if x == y) / n
    ca, cb = Counter(a), Counter(b)
    pe = sum(ca[k] * cb[k] for k in range(classes)) / (n * n)
    return (po - pe) / (1 - pe) if pe < 1 else math.nan
