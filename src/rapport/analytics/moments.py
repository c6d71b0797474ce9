"""Highlight moments of a session: engagement peaks and dips, and sentiment shifts."""

from __future__ import annotations

from rapport.analytics.windows import WindowResult
from rapport.events.schema import MediaTime, Moment

MAX_PEAKS = 3


def engagement_moments(windows: list[WindowResult], min_spread: float = 0.05) -> list[Moment]:
    """The highest windows (up to MAX_PEAKS) and the lowest, when engagement varied at all."""
    scored = [(w.room_engagement, w) for w in windows if w.room_engagement is not None]
    if len(scored) < 2:
        return []
    values = [v for v, _ in scored]
    if max(values) - min(values) < min_spread:
        return []
    mean = sum(values) / len(values)
    ranked = sorted(scored, key=lambda vw: vw[0], reverse=True)
    moments = [
        Moment(
            kind="engagement_peak",
            media_time=MediaTime(start=w.start, end=w.end),
            value=round(v, 4),
            description=f"room engagement {v:.2f} (session mean {mean:.2f})",
        )
        for v, w in ranked[:MAX_PEAKS]
        if v > mean
    ]
    low_v, low_w = ranked[-1]
    moments.append(
        Moment(
            kind="engagement_dip",
            media_time=MediaTime(start=low_w.start, end=low_w.end),
            value=round(low_v, 4),
            description=f"room engagement {low_v:.2f} (session mean {mean:.2f})",
        )
    )
    return moments
