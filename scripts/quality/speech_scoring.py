"""Scoring speech against the truth: word error rate, and VAD segments against speech spans."""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray

_TAG = re.compile(r"<[^>]*>|\([^)]*\)$")
_NON_WORD = re.compile(r"[^a-z' ]+")


def words(text: str) -> list[str]:
    """Lower-case words for WER: sentence tags (<s>), utterance ids "(id)" and punctuation go;
    apostrophes stay ("don't" is one word, as in the recogniser's dictionary)."""
    text = _TAG.sub(" ", text.strip().lower())
    return [w.strip("'") for w in _NON_WORD.sub(" ", text).split() if w.strip("'")]


def edit_counts(ref: Sequence[str], hyp: Sequence[str]) -> tuple[int, int, int]:
    """(substitutions, deletions, insertions) of a minimum-edit alignment of hyp to ref."""
    # cost, subs, dels, ins per cell; ties prefer fewer edits of any kind, then substitutions
    prev = [(j, 0, 0, j) for j in range(len(hyp) + 1)]
    for i in range(1, len(ref) + 1):
        cur = [(i, 0, i, 0)]
        for j in range(1, len(hyp) + 1):
            c, s, d, n = prev[j - 1]
            hit = ref[i - 1] == hyp[j - 1]
            diag = (c + (0 if hit else 1), s + (0 if hit else 1), d, n)
            c, s, d, n = prev[j]
            up = (c + 1, s, d + 1, n)
            c, s, d, n = cur[j - 1]
            left = (c + 1, s, d, n + 1)
            cur.append(min(diag, up, left))
        prev = cur
    _, s, d, n = prev[-1]
    return s, d, n


@dataclass
class WerTally:
    ref_words: int = 0
    subs: int = 0
    dels: int = 0
    ins: int = 0

    def add(self, ref: str, hyp: str) -> int:
        """Count one utterance; returns its word errors."""
        r, h = words(ref), words(hyp)
        s, d, n = edit_counts(r, h)
        self.ref_words += len(r)
        self.subs, self.dels, self.ins = self.subs + s, self.dels + d, self.ins + n
        return s + d + n

    def merge(self, other: WerTally) -> None:
        """Pool another tally's counts into this one."""
        self.ref_words += other.ref_words
        self.subs, self.dels, self.ins = (
            self.subs + other.subs,
            self.dels + other.dels,
            self.ins + other.ins,
        )

    @property
    def wer(self) -> float:
        return (self.subs + self.dels + self.ins) / self.ref_words if self.ref_words else math.nan


def speech_span(x: NDArray[np.float32], rate: int) -> tuple[float, float]:
    """(start, end) seconds of speech in a clip that holds one utterance: from the first to the
    last 10 ms frame whose level is within 35 dB of the loudest frame and at least 15 dB above the
    clip's floor (its 10th percentile frame level). The truth for every corpus."""
    hop = rate // 100
    n = len(x) // hop
    if n == 0:
        return 0.0, 0.0
    frames = x[: n * hop].astype(np.float64).reshape(n, hop)
    level = 10 * np.log10(np.maximum(np.mean(frames**2, axis=1), 1e-10))
    threshold = max(float(level.max()) - 35.0, float(np.percentile(level, 10)) + 15.0)
    loud = np.flatnonzero(level >= threshold)
    return float(loud[0] * hop) / rate, float((loud[-1] + 1) * hop) / rate


@dataclass
class BoundaryStats:
    start_err: list[float] = field(default_factory=list)
    """Per detected utterance: first overlapping segment's start minus the truth's (s)."""
    end_err: list[float] = field(default_factory=list)
    pieces: list[int] = field(default_factory=list)
    missed: int = 0
    false_alarms: int = 0
    false_alarm_s: float = 0.0
    utterances: int = 0


def match_segments(
    truth: Sequence[tuple[float, float]], segments: Sequence[tuple[float, float]]
) -> BoundaryStats:
    """Boundary errors of VAD segments against true speech spans (both sorted, seconds).

    A truth span is detected when some segment overlaps it; its start error is the first such
    segment's start minus the true start (negative: early), its end error the last one's end minus
    the true end. A segment that overlaps no truth span is a false alarm."""
    out = BoundaryStats(utterances=len(truth))
    used = [False] * len(segments)
    for ts, te in truth:
        hits = [k for k, (s, e) in enumerate(segments) if s < te and e > ts]
        if not hits:
            out.missed += 1
            continue
        for k in hits:
            used[k] = True
        out.start_err.append(segments[hits[0]][0] - ts)
        out.end_err.append(segments[hits[-1]][1] - te)
        out.pieces.append(len(hits))
    for k, (s, e) in enumerate(segments):
        if not used[k]:
            out.false_alarms += 1
            out.false_alarm_s += e - s
    return out
