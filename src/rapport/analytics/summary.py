"""End-of-session summary, accumulated window by window (nothing per frame is kept).

Means are weighted by window length (the last window may be longer than the rest), and the trend is
a least-squares slope over window midpoints.
"""

from __future__ import annotations

from collections import defaultdict

from rapport.analytics.moments import engagement_moments
from rapport.analytics.payloads import Pseudonyms, Reporting
from rapport.analytics.shifts import Shift
from rapport.analytics.windows import WindowResult, slope_per_minute
from rapport.events.schema import MediaTime, Moment, SessionSummaryData

Weighted = list[tuple[float, float]]
"""(value, weight) pairs."""


class SummaryBuilder:
    def __init__(self, reporting: Reporting, names: Pseudonyms) -> None:
        self._reporting = reporting
        self._names = names
        self._windows: list[WindowResult] = []
        self._shift_moments: list[Moment] = []
        self._speech_s: dict[str, float] = defaultdict(float)
        self._turns: dict[str, int] = defaultdict(int)
        self._per_person: dict[str, dict[str, Weighted]] = defaultdict(lambda: defaultdict(list))

    def add_window(self, w: WindowResult) -> None:
        # Only window aggregates are kept: a few numbers per window of media.
        self._windows.append(w)
        length = w.end - w.start
        for p, r in w.participants.items():
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
                    stats[key].append((value, length))

    def forget(self, participant: str) -> None:
        """Drop what is kept of one person (consent revoked); room timelines stay."""
        self._speech_s.pop(participant, None)
        self._turns.pop(participant, None)
        self._per_person.pop(participant, None)

    def add_shift(self, start: float, end: float, shift: Shift) -> None:
        direction = "up" if shift.delta > 0 else "down"
        self._shift_moments.append(
            Moment(
                kind="sentiment_shift",
                media_time=MediaTime(start=start, end=end),
                value=round(shift.delta, 4),
                description=f"room valence moved {direction} "
                f"from {shift.from_valence:+.2f} to {shift.to_valence:+.2f}",
            )
        )

    def build(self, duration_s: float, dropped: dict[str, int]) -> SessionSummaryData:
        ws = self._windows
        eng = [(w.room_engagement, w) for w in ws]
        val = [(w.room_valence, w) for w in ws]
        known = [((w.start + w.end) / 2, e) for e, w in eng if e is not None]
        named = self._reporting == "participant"

        def key(p: str) -> str:
            return p if named else self._names(p)

        moments = sorted(
            engagement_moments(ws) + self._shift_moments, key=lambda m: m.media_time.start
        )
        participants: dict[str, dict[str, float | None]] = {}
        if named:
            for p, stats in sorted(self._per_person.items()):
                participants[p] = {k: _mean(v) for k, v in sorted(stats.items())}
                participants[p]["speaking_s"] = round(self._speech_s[p], 2)
        return SessionSummaryData(
            duration_s=round(duration_s, 3),
            windows=len(ws),
            engagement=_mean([(e, w.end - w.start) for e, w in eng if e is not None]),
            engagement_trend=_round(slope_per_minute([t for t, _ in known], [e for _, e in known])),
            valence=_mean([(v, w.end - w.start) for v, w in val if v is not None]),
            valence_timeline=[_round(v) for v, _ in val],
            engagement_timeline=[_round(e) for e, _ in eng],
            speaking_shares={
                key(p): round(s / duration_s, 4) if duration_s > 0 else 0.0
                for p, s in sorted(self._speech_s.items())
            },
            turns={key(p): n for p, n in sorted(self._turns.items())},
            moments=moments,
            participants=participants,
            dropped={k: v for k, v in sorted(dropped.items()) if v},
        )


def _round(x: float | None) -> float | None:
    return None if x is None else round(x, 4)


def _mean(pairs: Weighted) -> float | None:
    total = sum(w for _, w in pairs)
    return round(sum(v * w for v, w in pairs) / total, 4) if total > 0 else None
