"""Turns closed windows into event payloads; the reporting level decides what leaves."""

from __future__ import annotations

from typing import Literal

from rapport.analytics.windows import WindowResult
from rapport.events.schema import (
    EngagementComponents,
    EngagementWindowData,
    ParticipantWindow,
    RoomWindow,
    TurnsWindowData,
)

Reporting = Literal["room", "participant"]


def _r(x: float | None, nd: int = 4) -> float | None:
    return None if x is None else round(x, nd)


def engagement_window(
    w: WindowResult, trend: float | None, reporting: Reporting
) -> EngagementWindowData:
    room = RoomWindow(
        engagement=_r(w.room_engagement),
        trend=_r(trend),
        valence=_r(w.room_valence),
        arousal=_r(w.room_arousal),
        participants=len(w.participants),
        faces=round(w.room_faces, 3),
    )
    participants: dict[str, ParticipantWindow] = {}
    if reporting == "participant":
        for p, r in w.participants.items():
            e = r.engagement
            participants[p] = ParticipantWindow(
                engagement=round(e.score, 4),
                components=EngagementComponents(
                    attention=_r(e.attention),
                    expressiveness=_r(e.expressiveness),
                    participation=round(e.participation, 4),
                ),
                calibrating=e.calibrating,
                valence=_r(r.affect.valence),
                arousal=_r(r.affect.arousal),
                speaking_share=round(r.speaking_share, 4),
                turns=r.turns,
                faces=round(r.faces, 3),
                modalities=list(r.affect.modalities),
            )
    return EngagementWindowData(room=room, participants=participants)


class Pseudonyms:
    """Stable stand-in names (speaker-1, speaker-2, ...) for one session, in order of first sight,
    so room-level reporting can show the balance without saying who holds which share."""

    def __init__(self) -> None:
        self._names: dict[str, str] = {}

    def __call__(self, participant: str) -> str:
        name = self._names.get(participant)
        if name is None:
            name = self._names[participant] = f"speaker-{len(self._names) + 1}"
        return name


def turns_window(w: WindowResult, reporting: Reporting, names: Pseudonyms) -> TurnsWindowData:
    def key(p: str) -> str:
        return p if reporting == "participant" else names(p)

    return TurnsWindowData(
        speaking_shares={key(p): round(r.speaking_share, 4) for p, r in w.participants.items()},
        turns={key(p): r.turns for p, r in w.participants.items()},
        silence_share=round(w.silence_share, 4),
        evenness=_r(w.evenness),
    )
