"""Session leases on a real database (SQLite here; the fleet test runs them on PostgreSQL): one
holder at a time, a holder's writes fenced by its epoch, and a claim that carries a session on
from where the stored timeline ends."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest

from rapport.events.schema import (
    Event,
    EventType,
    MediaTime,
    SessionResumedData,
    SessionStartedData,
)
from rapport.store import leases
from rapport.store.db import Database
from tests.fakes.rows import room_session

LEASE_S = 30.0


def run(tmp_path: Path, body: Callable[[Database, str], Awaitable[None]]) -> None:
    async def main() -> None:
        db = Database(f"sqlite+aiosqlite:///{tmp_path / 'leases.db'}")
        await db.migrate()
        room = f"room-{uuid.uuid4().hex[:6]}"
        async with db.transaction() as s:
            s.add(room_session(room))
        try:
            await body(db, room)
        finally:
            await db.close()

    asyncio.run(asyncio.wait_for(main(), 30))


def event(sid: str, seq: int, type_: EventType, start: float, end: float) -> Event:
    data: object
    if type_ == EventType.SESSION_RESUMED:
        data = SessionResumedData(reason="worker_lost", gap=MediaTime(start=start, end=end))
    else:
        data = SessionStartedData(
            source="livekit", modalities=["face"], window_s=2, sample_fps=5, reporting="room"
        )
    return Event(
        id=f"evt_{uuid.uuid4().hex}",
        type=type_,
        session_id=sid,
        seq=seq,
        emitted_at=datetime.now(UTC),
        media_time=MediaTime(start=start, end=end),
        data=data,  # type: ignore[arg-type]
        models={},
    )


async def write(db: Database, e: Event, epoch: int) -> None:
    async with db.transaction() as s:
        await leases.fence(s, [e], epoch)


def test_one_holder_at_a_time_and_a_lost_holder_is_fenced(tmp_path: Path) -> None:
    async def body(db: Database, room: str) -> None:
        first = await leases.claim(db, session_id=None, room=room, worker="w1", lease_s=LEASE_S)
        assert first is not None and first.epoch == 1 and not first.resumed
        sid = first.session_id
        # w2 is offered the room too, or w1 a second job for it: w1's lease runs, so neither
        # gets it (regression: w1 claimed it again and ran it twice, seq 0 stored twice).
        for worker in ("w2", "w1"):
            again = await leases.claim(
                db, session_id=sid, room=room, worker=worker, lease_s=LEASE_S
            )
            assert again is None, worker
        await write(db, event(sid, 0, EventType.SESSION_STARTED, 0, 0), first.epoch)
        # w1 goes silent past its lease (a lapse stands in for the wait): w2 takes over.
        assert await leases.renew(db, sid, first.epoch, -1.0)
        second = await leases.claim(db, session_id=sid, room=room, worker="w2", lease_s=LEASE_S)
        assert second is not None and second.epoch == 2
        assert second.resumed and second.reason == "worker_lost" and second.next_seq == 1
        # w1 comes back: its writes are refused and it cannot renew or end the session.
        with pytest.raises(leases.Fenced):
            await write(db, event(sid, 1, EventType.SESSION_STARTED, 0, 0), first.epoch)
        assert not await leases.renew(db, sid, first.epoch, LEASE_S)
        assert not await leases.end(db, sid, first.epoch, "ended", None, {})
        assert await leases.end(db, sid, second.epoch, "ended", None, {})
        # An ended session is nobody's to claim.
        assert await leases.claim(db, session_id=sid, room=room, worker="w3", lease_s=1) is None

    run(tmp_path, body)


def test_two_hand_overs_without_a_window_between_keep_one_timeline(tmp_path: Path) -> None:
    """Regression (found by tests/unit/test_handover_machine.py): the timeline's end was stored
    only with windows, so a second resume before any window stated its gap from the last
    window, overlapping the first resume's gap (E3)."""

    async def body(db: Database, room: str) -> None:
        c1 = await leases.claim(db, session_id=None, room=room, worker="w1", lease_s=LEASE_S)
        assert c1 is not None
        sid = c1.session_id
        await write(db, event(sid, 0, EventType.SESSION_STARTED, 0, 0), c1.epoch)
        await leases.release(db, sid, c1.epoch)  # drained before a window closed
        c2 = await leases.claim(db, session_id=sid, room=room, worker="w2", lease_s=LEASE_S)
        assert c2 is not None and c2.reason == "worker_drained" and c2.windows_end == 0.0
        await write(db, event(sid, 1, EventType.SESSION_RESUMED, 0.0, 4.0), c2.epoch)
        await leases.release(db, sid, c2.epoch)
        c3 = await leases.claim(db, session_id=sid, room=room, worker="w3", lease_s=LEASE_S)
        assert c3 is not None and c3.next_seq == 2
        assert c3.windows_end == 4.0  # where the first gap ended, not 0

    run(tmp_path, body)
