"""End-of-session summary, accumulated window by window (nothing per frame is kept).

Means are weighted by window length (the last window may be longer than the rest), and the trend is
a least-squares slope over window midpoints. Per window only the published room numbers are kept,
in flat arrays (a few bytes per window: a long session adds no objects), and per person the runs of
windows they contributed to. Revoking a person's consent drops what is kept of them (their speaking
time, turns and means); erasing them also withdraws the room numbers they contributed to (those
windows' events are deleted from the store too), so the summary is then only the others'.
"""

from __future__ import annotations

import math
from array import array
from collections import defaultdict
from dataclasses import dataclass

from rapport.analytics.moments import engagement_moments
from rapport.analytics.payloads import Pseudonyms, Reporting
from rapport.analytics.shifts import Shift
from rapport.analytics.windows import WindowResult, slope_per_minute
from rapport.events.schema import MediaTime, Moment, SessionSummaryData

Weighted = list[tuple[float, float]]
"""(value, weight) pairs."""


@dataclass(slots=True, frozen=True)
class _Point:
    """A closed window's published room numbers, as moments read them."""

    index: int
    start: float
    end: float
    room_engagement: float | None


class SummaryBuilder:
    def __init__(self, reporting: Reporting, names: Pseudonyms, min_participants: int = 1) -> None:
        """`min_participants`: with room reporting, session-wide speaking shares and turns are
        withheld unless at least this many people contributed."""
        self._reporting = reporting
        self._names = names
        self._min_participants = min_participants
        # Per window, in order; NaN stands for None (unmeasured, withheld or withdrawn).
        self._starts = array("d")
        self._ends = array("d")
        self._engagement = array("d")
        self._valence = array("d")
        self._runs: dict[str, array[int]] = {}
        """Per person, flat (first, last) window positions of each run of windows they were in;
        a revoked person's are kept under their token (not their id), for a later erasure."""
        # Sentiment shifts: window start and end, from and to valence (Moments built at the end).
        self._shifts = array("d")
        self._speech_s: dict[str, float] = defaultdict(float)
        self._turns: dict[str, int] = defaultdict(int)
        # Per person and measure: [sum of value * weight, sum of weight] (constant memory).
        self._per_person: dict[str, dict[str, list[float]]] = defaultdict(
            lambda: defaultdict(lambda: [0.0, 0.0])
        )
        self.withdrawn = 0
        """Windows whose room numbers were withdrawn by an erasure."""

    def add_window(self, w: WindowResult, engagement: float | None, valence: float | None) -> None:
        """`engagement`, `valence`: the room numbers as published for this window."""
        i = len(self._starts)
        self._starts.append(w.start)
        self._ends.append(w.end)
        self._engagement.append(_nan(engagement))
        self._valence.append(_nan(valence))
        length = w.end - w.start
        for p, r in w.participants.items():
            runs = self._runs.setdefault(p, array("l"))
            if runs and runs[-1] == i - 1:
                runs[-1] = i
            else:
                runs.extend((i, i))
            self._speech_s[p] += r.speaking_share * length
            self._turns[p] += r.turns
            stats = self._per_person[p]
            for key, value in (
                ("engagement", r.engagement.score),
                ("attention", r.engagement.attention),
                ("expressiveness", r.engagement.expressiveness),
                ("valence", r.affect.valence),
                ("arousal", r.affect.arousal),
            ):
                if value is not None:
                    acc = stats[key]
                    acc[0] += value * length
                    acc[1] += length

    def forget(self, participant: str, *, erased: bool = False, token: str = "") -> None:
        """Drop what is kept of one person (consent revoked); `erased` also withdraws the room
        numbers of every window they contributed to, and the shifts seen in those windows.
        `token` stands for them after a revocation (see consent.gate.Purge)."""
        self._speech_s.pop(participant, None)
        self._turns.pop(participant, None)
        self._per_person.pop(participant, None)
        runs = self._runs.pop(participant, array("l"))
        if token:
            runs += self._runs.pop(token, array("l"))
        if not erased:
            if token and runs:
                self._runs[token] = runs  # under the stand-in, never the id
            return
        for first, last in zip(runs[::2], runs[1::2], strict=True):
            for i in range(first, last + 1):
                if not (math.isnan(self._engagement[i]) and math.isnan(self._valence[i])):
                    self.withdrawn += 1
                self._engagement[i] = self._valence[i] = math.nan
            start, end = self._starts[first], self._ends[last]
            kept = [s for s in _fours(self._shifts) if not start <= s[0] < end]
            self._shifts = array("d", [x for s in kept for x in s])

    def add_shift(self, start: float, end: float, shift: Shift) -> None:
        self._shifts.extend((start, end, shift.from_valence, shift.to_valence))

    def _shift_moments(self) -> list[Moment]:
        moments = []
        for start, end, before, after in _fours(self._shifts):
            moments.append(
                Moment(
                    kind="sentiment_shift",
                    media_time=MediaTime(start=start, end=end),
                    value=round(after - before, 4),
                    description=f"room valence moved {'up' if after > before else 'down'} "
                    f"from {before:+.2f} to {after:+.2f}",
                )
            )
        return moments

    def build(self, duration_s: float, dropped: dict[str, int]) -> SessionSummaryData:
        points = [
            _Point(i, self._starts[i], self._ends[i], _none(self._engagement[i]))
            for i in range(len(self._starts))
        ]
        valences = [_none(v) for v in self._valence]
        named = self._reporting == "participant"
        # A room of too few people is those people: no per-pseudonym shares then.
        shares_shown = named or len(self._speech_s) >= self._min_participants

        def key(p: str) -> str:
            return p if named else self._names(p)

        moments = sorted(
            engagement_moments(points) + self._shift_moments(), key=lambda m: m.media_time.start
        )
        participants: dict[str, dict[str, float | None]] = {}
        if named:
            for p, stats in sorted(self._per_person.items()):
                participants[p] = {
                    k: round(v / w, 4) if w > 0 else None for k, (v, w) in sorted(stats.items())
                }
                participants[p]["speaking_s"] = round(self._speech_s[p], 2)
        if self.withdrawn:
            dropped = {**dropped, "windows_withdrawn_by_erasure": self.withdrawn}
        engaged = [p for p in points if p.room_engagement is not None]
        return SessionSummaryData(
            duration_s=round(duration_s, 3),
            windows=len(points),
            engagement=_mean([(p.room_engagement or 0.0, p.end - p.start) for p in engaged]),
            engagement_trend=_round(
                slope_per_minute(
                    [(p.start + p.end) / 2 for p in engaged],
                    [p.room_engagement or 0.0 for p in engaged],
                )
            ),
            valence=_mean(
                [
                    (v, p.end - p.start)
                    for v, p in zip(valences, points, strict=True)
                    if v is not None
                ]
            ),
            valence_timeline=[_round(v) for v in valences],
            engagement_timeline=[_round(p.room_engagement) for p in points],
            speaking_shares={
                key(p): round(min(1.0, s / duration_s), 4) if duration_s > 0 else 0.0
                for p, s in sorted(self._speech_s.items())
                if shares_shown
            },
            turns={key(p): n for p, n in sorted(self._turns.items()) if shares_shown},
            moments=moments,
            participants=participants,
            dropped={k: v for k, v in sorted(dropped.items()) if v},
        )


def _fours(values: array[float]) -> list[tuple[float, float, float, float]]:
    return list(zip(values[::4], values[1::4], values[2::4], values[3::4], strict=True))


def _nan(x: float | None) -> float:
    return math.nan if x is None else x


def _none(x: float) -> float | None:
    return None if math.isnan(x) else x


def _round(x: float | None) -> float | None:
    return None if x is None else round(x, 4)


def _mean(pairs: Weighted) -> float | None:
    total = sum(w for _, w in pairs)
    return round(sum(v * w for v, w in pairs) / total, 4) if total > 0 else None
