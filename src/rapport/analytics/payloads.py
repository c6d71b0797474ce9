"""Turns closed windows into event payloads; the reporting level decides what leaves.

With room reporting, people are named by random pseudonyms, and a window's room numbers are
withheld (null, with the reason) while fewer than `reporting.min_participants` people contribute to
it: a room of one is that one person.
"""

from __future__ import annotations

import secrets
from typing import Final, Literal

from rapport.analytics.windows import WindowResult
from rapport.events.schema import (
    EngagementComponents,
    EngagementWindowData,
    ParticipantWindow,
    RoomWindow,
    TurnsWindowData,
)

Reporting = Literal["room", "participant"]

WITHHELD: Final = "fewer_than_min_participants"
"""Why a window's room numbers are null although they were measured."""


def _r(x: float | None, nd: int = 4) -> float | None:
    return None if x is None else round(x, nd)


def withheld(w: WindowResult, reporting: Reporting, min_participants: int) -> bool:
    """Whether the window's room numbers must not leave: room reporting over too few people."""
    return reporting == "room" and len(w.participants) < min_participants


def engagement_window(
    w: WindowResult, trend: float | None, reporting: Reporting, *, hidden: bool = False
) -> EngagementWindowData:
    """`hidden`: the room numbers are withheld (see `withheld`)."""
    if hidden:
        room = RoomWindow(
            engagement=None,
            trend=None,
            valence=None,
            arousal=None,
            participants=len(w.participants),
            faces=None,
            withheld=WITHHELD,
        )
        return EngagementWindowData(room=room, participants={})
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
    """Stand-in names (speaker-3f09a2, ...) for one session, so room-level reporting can show the
    balance without saying who holds which share. Random, not in order of arrival or of user id:
    a name says nothing of who holds it."""

    def __init__(self) -> None:
        self._names: dict[str, str] = {}

    def __call__(self, participant: str) -> str:
        name = self._names.get(participant)
        while name is None:
            candidate = f"speaker-{secrets.token_hex(3)}"
            if candidate not in self._names.values():
                name = self._names[participant] = candidate
        return name

    def forget(self, participant: str) -> None:
        self._names.pop(participant, None)


def turns_window(
    w: WindowResult, reporting: Reporting, names: Pseudonyms, *, hidden: bool = False
) -> TurnsWindowData:
    """`hidden`: the room numbers are withheld (see `withheld`)."""

    def key(p: str) -> str:
        return p if reporting == "participant" else names(p)

    if hidden:
        return TurnsWindowData(
            speaking_shares={}, turns={}, silence_share=None, evenness=None, withheld=WITHHELD
        )
    return TurnsWindowData(
        speaking_shares={key(p): round(r.speaking_share, 4) for p, r in w.participants.items()},
        turns={key(p): r.turns for p, r in w.participants.items()},
        silence_share=round(w.silence_share, 4),
        evenness=_r(w.evenness),
    )
