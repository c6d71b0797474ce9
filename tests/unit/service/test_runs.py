"""How a running session's events are stored (service/runs.py with the real Recorder on SQLite): a
window's engagement.window and turns.window go in one transaction, so a worker that loses its
claim on the session (or dies) between them leaves neither, never half a window."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from sqlalchemy import func, select, update

from rapport.events.schema import Event, EventType
from rapport.events.ssrf import resolver_for
from rapport.events.webhooks import Outbox
from rapport.events.websocket import EventHub
from rapport.service.recorder import Recorder
from rapport.service.runs import Runs
from rapport.store.db import Database
from rapport.store.leases import Fenced
from rapport.store.tables import Event as EventRow
from rapport.store.tables import Session
from tests.fakes.heads import LiveRoom, audio, frame
from tests.fakes.rows import room_session


def window_pairs(session_id: str) -> list[tuple[Event, Event]]:
    """Real window events from a live session on the fake heads, as if of `session_id`."""
    room = LiveRoom(window_s=1.0, min_participants=1)
    for i in range(30):
        t = i * 0.1
        room.clock.t = t
        room.session.push_video(frame("ana", t))
        room.session.push_audio(audio("ana", t, 0.1, speech=i % 7 < 3))
    room.session.tick(3.0)
    evs = [e.model_copy(update={"session_id": session_id}) for e in room.events]
    eng = [e for e in evs if e.type == EventType.ENGAGEMENT_WINDOW]
    turns = [e for e in evs if e.type == EventType.TURNS_WINDOW]
    assert len(eng) >= 2 and [e.seq + 1 for e in eng] == [t.seq for t in turns]
    return list(zip(eng, turns, strict=True))


def test_a_windows_two_events_are_stored_together_or_not_at_all(tmp_path: Path) -> None:
    async def main() -> None:
        db = Database(f"sqlite+aiosqlite:///{tmp_path / 'runs.db'}")
        await db.migrate()
        row = room_session("r", status="running", epoch=1)
        sid = row.id
        async with db.transaction() as s:
            s.add(row)
        room = LiveRoom()
        outbox = Outbox(db, room.settings.webhooks, resolve=resolver_for(None))
        recorder = Recorder(db, EventHub(8), outbox)

        async def finished(*_: object) -> None:
            return None

        runs = Runs(room.settings, room.pack, recorder, finished)  # type: ignore[arg-type]
        runs.open(sid, []).epoch = 1

        async def stored() -> int:
            async with db.session() as s:
                return int(await s.scalar(select(func.count()).select_from(EventRow)) or 0)

        (eng, turns), (eng2, turns2), *_ = window_pairs(sid)
        await asyncio.to_thread(runs._store, eng)
        assert await stored() == 0  # waits for its other half
        await asyncio.to_thread(runs._store, turns)
        assert await stored() == 2
        # Another worker claims the session: this one can store neither half of its next window.
        async with db.transaction() as s:
            await s.execute(update(Session).where(Session.id == sid).values(epoch=2))
        await asyncio.to_thread(runs._store, eng2)
        with pytest.raises(Fenced):
            await asyncio.to_thread(runs._store, turns2)
        assert await stored() == 2
        await db.close()

    asyncio.run(asyncio.wait_for(main(), 30))
