"""Synchrony between participants, live: at each window's end, cross-recurrence (CRQA, see
analytics/crqa.py) of every pair's smoothed face series over the last `synchrony.window_s`.

Each participant's camera gives one smoothed value per sampled frame (valence, arousal or
expressiveness: `synchrony.signal`). Over the span, the values are put on one grid at the sample
rate (the last value in each cell); a person takes part when their face was measured in at least
`min_coverage` of the cells, and the cells between are filled from the last value (the first
ones from the first value). Each series is z-scored per person, so the radius is in units of each
person's own variation. Shared room cameras take no part: their faces are not participants.

Only the room aggregate leaves with room reporting, withheld below `reporting.min_participants`;
per-pair values go out with participant reporting only. Nothing is kept beyond the span.
"""

from __future__ import annotations

import math
from collections import deque
from typing import Final

import numpy as np
from numpy.typing import NDArray

from rapport.analytics.crqa import RqaParams, crqa_pairs, flat, zscore
from rapport.analytics.payloads import WITHHELD, Reporting
from rapport.config import SynchronySettings
from rapport.events.schema import (
    LagSpread,
    Spread,
    SynchronyPair,
    SynchronyParameters,
    SynchronyRoom,
    SynchronyWindowData,
)
from rapport.frames import FrameSummary

MIN_SPAN_S: Final = 20.0
"""No synchrony before this much media (or `window_s`, if shorter): fewer samples say little."""

MAX_RATE_HZ: Final = 4.0
"""The grid's rate at most, whatever `video.sample_fps`: CRQA costs the square of the samples."""

PRESENT_S: Final = 2.0
"""A person takes part only with a sample this recent at the span's end (or within one interval
of the lowest sampling rate): someone who left is not carried on by filling."""


def _r(x: float, nd: int = 4) -> float:
    return round(x, nd) if math.isfinite(x) else 0.0


class SynchronyTracker:
    """Per-participant face series of one session, and the synchrony payload at a window's end."""

    def __init__(
        self, settings: SynchronySettings, sample_fps: float, min_fps: float | None = None
    ) -> None:
        """`min_fps`: the lowest rate a live camera may be sampled at (adaptive sampling); a
        sample then covers the grid cells up to its interval, so coverage is not a frame count."""
        self._s = settings
        self._fps = min(sample_fps, MAX_RATE_HZ)
        self._reach = max(1, int(self._fps / min_fps + 1e-9)) if min_fps else 1
        self._present_s = max(PRESENT_S, 1.0 / min_fps if min_fps else 0.0)
        self._since = 0.0  # no span reaches before this (a resumed session's first boundary)
        self._series: dict[str, deque[tuple[float, float]]] = {}
        self._params = RqaParams(
            embedding=settings.embedding,
            delay=max(1, round(settings.delay_s * self._fps)),
            radius=settings.radius,
            theiler=settings.theiler,
            min_line=settings.min_line,
        )
        self._max_lag = max(1, round(settings.max_lag_s * self._fps))

    def add(self, frame: FrameSummary) -> None:
        """One sampled frame of a participant's camera; frames without a face leave a gap."""
        if frame.participant is None or frame.faces == 0:
            return
        value = getattr(frame, self._s.signal)
        if value is None:
            return
        self._series.setdefault(frame.participant, deque()).append((frame.t, float(value)))

    def forget(self, person: str) -> None:
        self._series.pop(person, None)

    def clear(self) -> None:
        self._series.clear()

    def restart(self, at: float) -> None:
        """A resumed session: nothing before media time `at` was analysed here."""
        self._series.clear()
        self._since = at

    def window(
        self, end: float, reporting: Reporting, min_participants: int
    ) -> tuple[float, SynchronyWindowData] | None:
        """(span start, payload) for the span ending at `end`, or None while fewer than two
        people's series cover it (or the session is younger than the shortest span)."""
        start = max(self._since, end - self._s.window_s)
        for person in list(self._series):  # a later window never looks further back
            q = self._series[person]
            while q and q[0][0] < start:
                q.popleft()
            if not q:
                del self._series[person]
        if end - start < min(MIN_SPAN_S, self._s.window_s) - 1e-9:
            return None
        n = max(1, round((end - start) * self._fps))
        grids = []  # (coverage, person, row), in id order: a pair is always (a, b) the same way
        for person in sorted(self._series):
            q = self._series[person]
            if q[-1][0] < end - self._present_s:
                continue  # left, camera off, or face gone: not carried on by filling
            grid = self._grid(q, start, end, n)
            if grid is not None and not flat(grid[1]):  # a still image has nothing to compare
                grids.append((grid[0], person, grid[1]))
        if len(grids) > self._s.max_participants:  # bounded cost: those best covered
            best = sorted(grids, key=lambda g: -g[0])[: self._s.max_participants]
            grids = sorted(best, key=lambda g: g[1])
        people = [person for _, person, _ in grids]
        rows = [row for _, _, row in grids]
        if len(people) < 2 or n < self._needed():
            return None
        params = self._parameters()
        if reporting == "room" and len(people) < min_participants:
            room = SynchronyRoom(
                participants=len(people),
                pairs=len(people) * (len(people) - 1) // 2,
                rr=None,
                det=None,
                led_share=None,
                lag_s=None,
                withheld=WITHHELD,
            )
            return start, SynchronyWindowData(room=room, parameters=params)
        series = np.stack([zscore(row) for row in rows])
        result = crqa_pairs(series, self._params, self._max_lag, standardise=False)
        pairs = []
        for k, (i, j) in enumerate(result.pairs):
            lag = int(result.lag[k])
            clear = bool(result.clear[k])
            pairs.append(
                SynchronyPair(
                    a=people[i],
                    b=people[j],
                    rr=_r(float(result.rr[k])),
                    det=_r(float(result.det[k])),
                    l=_r(float(result.l[k])),
                    lmax=int(result.lmax[k]),
                    entr=_r(float(result.entr[k])),
                    lam=_r(float(result.lam[k])),
                    tt=_r(float(result.tt[k])),
                    leader=(people[i] if lag > 0 else people[j]) if clear else None,
                    lag_s=_r(abs(lag) / self._fps, 3) if clear else None,
                )
            )
        return start, SynchronyWindowData(
            room=_room(pairs, len(people)),
            pairs=pairs if reporting == "participant" else [],
            parameters=params,
        )

    def _needed(self) -> int:
        """Samples a pair needs: the embedding, and room for every lag searched."""
        p = self._params
        return (p.embedding - 1) * p.delay + 2 * self._max_lag + 2

    def _grid(
        self, q: deque[tuple[float, float]], start: float, end: float, n: int
    ) -> tuple[float, NDArray[np.float64]] | None:
        """(coverage, the filled row), or None under `min_coverage`."""
        row = np.full(n, np.nan)
        for t, value in q:
            if start <= t < end:
                row[min(n - 1, int((t - start) * self._fps))] = value
        valid = np.flatnonzero(~np.isnan(row))
        if not valid.size:
            return None
        # Forward fill (each cell takes the last measured value), the head from the first.
        idx = np.where(~np.isnan(row), np.arange(n), 0)
        np.maximum.accumulate(idx, out=idx)
        covered = (np.arange(n) - idx < self._reach) & (np.arange(n) >= valid[0])
        coverage = np.count_nonzero(covered) / n
        if coverage < self._s.min_coverage:
            return None
        filled: NDArray[np.float64] = row[idx]
        filled[: valid[0]] = filled[valid[0]]
        return coverage, filled

    def _parameters(self) -> SynchronyParameters:
        return SynchronyParameters(
            signal=self._s.signal,
            window_s=self._s.window_s,
            sample_rate_hz=self._fps,
            embedding=self._params.embedding,
            delay_s=round(self._params.delay / self._fps, 4),
            radius=self._params.radius,
            theiler=self._params.theiler,
            min_line=self._params.min_line,
            max_lag_s=round(self._max_lag / self._fps, 4),
        )


def _room(pairs: list[SynchronyPair], participants: int) -> SynchronyRoom:
    rr = np.array([p.rr for p in pairs])
    det = np.array([p.det for p in pairs])
    lags = np.array([p.lag_s for p in pairs if p.lag_s is not None])
    return SynchronyRoom(
        participants=participants,
        pairs=len(pairs),
        rr=Spread(mean=_r(float(rr.mean())), sd=_r(float(rr.std()))),
        det=Spread(mean=_r(float(det.mean())), sd=_r(float(det.std()))),
        led_share=_r(lags.size / len(pairs)),
        lag_s=(
            LagSpread(
                p25=_r(float(np.percentile(lags, 25)), 3),
                median=_r(float(np.median(lags)), 3),
                p75=_r(float(np.percentile(lags, 75)), 3),
            )
            if lags.size
            else None
        ),
    )
