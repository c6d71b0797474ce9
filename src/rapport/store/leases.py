"""Which worker holds a live room session: a lease in the sessions table.

A worker claims a session (its epoch goes up by one), renews the lease every third of
`livekit.lease_s`, and writes every event under its epoch (`fence`): once another worker has
claimed the session, the old one's writes fail (Fenced) and it stops, so no event is written
twice and `seq` stays gap-free. A claim of a session that was held before carries it on
(`Resume`): the next seq and the end of the last window are stored with each event.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from rapport.errors import RapportError
from rapport.events.schema import Event, EventType
from rapport.store.db import Database
from rapport.store.tables import Consent, Session

LIVE = ("created", "running")
TIMELINE = (EventType.ENGAGEMENT_WINDOW, EventType.SESSION_RESUMED)
"""Events whose end is where the session's timeline stands: a window, or a resume's gap (no
window may come between two hand-overs)."""


class Fenced(RapportError):
    """Another worker has claimed the session since: this one must stop writing."""


@dataclass(slots=True, frozen=True)
class Claim:
    session_id: str
    project: str
    epoch: int
    reporting: str
    consents: list[Consent]
    """The session's consents in force when claimed."""
    resumed: bool
    next_seq: int
    windows_end: float
    media_time: float
    """Media time at the claim: seconds since the session first started."""
    reason: str
    """Why it moved, when resumed: worker_drained (handed over) or worker_lost."""


def _now() -> datetime:
    return datetime.now(UTC)


async def claim(
    db: Database, *, session_id: str | None, room: str, worker: str, lease_s: float
) -> Claim | None:
    """Claim the live session of `room` (the one `session_id` names, when given); None when there
    is none, or a lease on it still runs (another worker's, or this one's: a second job for the
    same room)."""
    async with db.transaction() as s:
        q = select(Session).where(
            Session.source_kind == "room", Session.source == room, Session.status.in_(LIVE)
        )
        if session_id:
            q = q.where(Session.id == session_id)
        row = await s.scalar(q.order_by(Session.created_at.desc()).limit(1))
        now = _now()
        if row is None:
            return None
        held = row.worker is not None and row.lease_until is not None and row.lease_until > now
        if held:  # by another worker, or by this one already (a second job for the room)
            return None
        # Read before the update below, which also changes `row` (the ORM synchronises it).
        epoch, next_seq, windows_end = row.epoch + 1, row.next_seq, row.windows_end
        reason = "worker_drained" if row.worker is None else "worker_lost"
        resumed = row.status == "running" and next_seq > 0
        started = row.started_at if row.started_at is not None and resumed else now
        taken = await s.execute(
            update(Session)
            .where(Session.id == row.id, Session.epoch == epoch - 1)
            .values(
                status="running",
                started_at=started,
                worker=worker,
                epoch=epoch,
                lease_until=now + timedelta(seconds=lease_s),
                dispatched_at=None,  # taken: if this worker is lost, dispatch again at once
            )
        )
        if getattr(taken, "rowcount", 0) != 1:
            return None  # another worker claimed it between our read and write
        consents = list(
            await s.scalars(
                select(Consent).where(
                    Consent.session_id == row.id,
                    Consent.revoked_at.is_(None),
                    Consent.expires_at > now,
                )
            )
        )
        return Claim(
            session_id=row.id,
            project=row.project,
            epoch=epoch,
            reporting=row.reporting,
            consents=consents,
            resumed=resumed,
            next_seq=next_seq,
            windows_end=windows_end,
            media_time=(now - started).total_seconds(),
            reason=reason,
        )


async def renew(db: Database, session_id: str, epoch: int, lease_s: float) -> bool:
    """False when the session is no longer ours (claimed by another, or ended)."""
    async with db.transaction() as s:
        done = await s.execute(
            update(Session)
            .where(Session.id == session_id, Session.epoch == epoch, Session.status == "running")
            .values(lease_until=_now() + timedelta(seconds=lease_s))
        )
        return getattr(done, "rowcount", 0) == 1


async def release(db: Database, session_id: str, epoch: int) -> None:
    """Hand the session over (drained): it stays running, held by no one, for the next claim."""
    async with db.transaction() as s:
        await s.execute(
            update(Session)
            .where(Session.id == session_id, Session.epoch == epoch)
            .values(worker=None, lease_until=None)
        )


async def end(
    db: Database,
    session_id: str,
    epoch: int,
    status: str,
    error: str | None,
    counts: dict[str, object],
) -> bool:
    """Store the session's end, if it is still ours."""
    async with db.transaction() as s:
        done = await s.execute(
            update(Session)
            .where(Session.id == session_id, Session.epoch == epoch)
            .values(
                status=status,
                error=error,
                counts=counts,
                ended_at=_now(),
                worker=None,
                lease_until=None,
            )
        )
        return getattr(done, "rowcount", 0) == 1


async def fence(s: AsyncSession, events: Sequence[Event], epoch: int) -> None:
    """In the events' transaction: raise Fenced unless the session is still held at `epoch`;
    record where the next holder goes on."""
    values: dict[str, object] = {"next_seq": events[-1].seq + 1}
    for event in events:
        if event.type in TIMELINE:
            values["windows_end"] = event.media_time.end
    done = await s.execute(
        update(Session)
        .where(Session.id == events[0].session_id, Session.epoch == epoch)
        .values(values)
    )
    if getattr(done, "rowcount", 0) != 1:
        raise Fenced(f"session {events[0].session_id} is held by another worker now")
