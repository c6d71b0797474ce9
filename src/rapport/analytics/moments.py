"""Highlight moments of a session: engagement peaks and dips, and sentiment shifts."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from rapport.events.schema import MediaTime, Moment

MAX_PEAKS = 3


class RoomPoint(Protocol):
    """A closed window's published room engagement (None: not measured, or withheld)."""

    @property
    def index(self) -> int: ...
    @property
    def start(self) -> float: ...
    @property
    def end(self) -> float: ...
    @property
    def room_engagement(self) -> float | None: ...


def engagement_moments(windows: Sequence[RoomPoint], min_spread: float = 0.05) -> list[Moment]:
    """Up to MAX_PEAKS highest stretches and the lowest window, when engagement varied at all.

    Adjacent top windows are one stretch (one moment spanning them), not several moments.
    """
    scored = [(w.room_engagement, w) for w in windows if w.room_engagement is not None]
    if len(scored) < 2:
        return []
    values = [v for v, _ in scored]
    if max(values) - min(values) < min_spread:
        return []
    mean = sum(values) / len(values)
    top = {w.index for v, w in sorted(scored, key=lambda vw: vw[0], reverse=True)[:MAX_PEAKS]}
    moments: list[Moment] = []
    stretch: list[tuple[float, RoomPoint]] = []
    for v, w in [*scored, (None, None)]:
        if w is not None and v is not None and w.index in top and v > mean:
            if stretch and stretch[-1][1].index != w.index - 1:
                moments.append(_peak(stretch, mean))
                stretch = []
            stretch.append((v, w))
        elif stretch:
            moments.append(_peak(stretch, mean))
            stretch = []
    low_v, low_w = min(scored, key=lambda vw: vw[0])
    moments.append(
        Moment(
            kind="engagement_dip",
            media_time=MediaTime(start=low_w.start, end=low_w.end),
            value=round(low_v, 4),
            description=f"room engagement {low_v:.2f} (session mean {mean:.2f})",
        )
    )
    return moments


def _peak(stretch: list[tuple[float, RoomPoint]], mean: float) -> Moment:
    best = max(v for v, _ in stretch)
    return Moment(
        kind="engagement_peak",
        media_time=MediaTime(start=stretch[0][1].start, end=stretch[-1][1].end),
        value=round(best, 4),
        description=f"room engagement up to {best:.2f} (session mean {mean:.2f})",
    )
