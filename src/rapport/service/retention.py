"""Retention and erasure. Raw media is never stored, so what is kept is events (aggregates),
summaries, delivery records and session metadata: all of it goes after `retention.days`.
Erasure of a person removes everything derived from them; the consent log keeps the fact only."""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import delete, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from rapport.consent.records import LogEntry
from rapport.consent.store import ConsentLog, iso
from rapport.service.api import ErasureOut
from rapport.service.fleet import Fleet
from rapport.service.runs import Runs
from rapport.store.db import Database
from rapport.store.notify import CONSENTS, notify
from rapport.store.tables import Consent, ConsentLogEntry, Event, Session, WebhookMessage

log = logging.getLogger(__name__)


async def purge(db: Database, days: float, at: datetime | None = None) -> dict[str, int]:
    cutoff = (at or datetime.now(UTC)) - timedelta(days=days)
    async with db.transaction() as s:
        events = await s.execute(delete(Event).where(Event.created_at < cutoff))
        messages = await s.execute(delete(WebhookMessage).where(WebhookMessage.created_at < cutoff))
        sessions = await s.execute(
            delete(Session).where(Session.ended_at.is_not(None), Session.ended_at < cutoff)
        )
    return {
        "events": int(getattr(events, "rowcount", 0)),
        "deliveries": int(getattr(messages, "rowcount", 0)),
        "sessions": int(getattr(sessions, "rowcount", 0)),
    }


async def purge_forever(db: Database, days: float, interval_s: float) -> None:
    while True:
        counts = await purge(db, days)
        if any(counts.values()):
            log.info("retention purge", extra=counts)
        await asyncio.sleep(interval_s)


async def erase_subject(
    db: Database,
    consents: ConsentLog,
    runs: Runs,
    project: str,
    user_id: str,
    fleet: Fleet | None = None,
) -> ErasureOut:
    mine = (Consent.project == project, Consent.user_id == user_id)
    async with db.session() as s:
        rows = list(await s.scalars(select(Consent).where(*mine)))
    now = datetime.now(UTC)
    for session_id in sorted({c.session_id for c in rows}):  # processing stops first
        await runs.erase(session_id, user_id)
        if fleet is not None:
            await fleet.erase(session_id, user_id)
    if not rows:
        return ErasureOut(
            user_id=user_id,
            consents_erased=0,
            sessions_affected=0,
            events_deleted=0,
            deliveries_deleted=0,
            erasure_seq=None,
        )
    seqs = sorted({c.grant_seq for c in rows} | {c.revoke_seq for c in rows if c.revoke_seq})
    sessions = sorted({c.session_id for c in rows})
    deleted = {"events": 0, "deliveries": 0}

    async def derive(s: AsyncSession, _: LogEntry) -> None:
        await s.execute(
            update(ConsentLogEntry)
            .where(ConsentLogEntry.project == project, ConsentLogEntry.seq.in_(seqs))
            .values(content=None)
        )
        await s.execute(delete(Consent).where(*mine))
        for session_id in sessions:  # a worker that claims one meanwhile drops them too
            await notify(s, CONSENTS, session_id)
        for row in await s.scalars(select(Session).where(Session.id.in_(sessions))):
            if row.counts:  # an ended session's counters, as stored
                row.counts = without_person(row.counts, user_id)
        ev = await s.execute(delete(Event).where(Event.session_id.in_(sessions)))
        msg = await s.execute(delete(WebhookMessage).where(WebhookMessage.session_id.in_(sessions)))
        deleted["events"] = int(getattr(ev, "rowcount", 0))
        deleted["deliveries"] = int(getattr(msg, "rowcount", 0))

    entry = await consents.append(
        project, "erasure", {"erased_seqs": seqs, "erased_at": iso(now)}, derive
    )
    return ErasureOut(
        user_id=user_id,
        consents_erased=len(rows),
        sessions_affected=len(sessions),
        events_deleted=deleted["events"],
        deliveries_deleted=deleted["deliveries"],
        erasure_seq=entry.seq,
    )


def without_person(counts: dict[str, Any], user_id: str) -> dict[str, Any]:
    """A session's stored counters less everything keyed by one person (the gate's per-person
    table, the bot's subscriptions and layer sizes); totals keep their numbers, unnamed."""
    out = dict(counts)
    people = out.get("participants")
    if isinstance(people, dict):
        out["participants"] = {p: v for p, v in people.items() if p != user_id}
    bot = out.get("livekit")
    if isinstance(bot, dict):
        bot = dict(bot)
        for key, value in bot.items():
            if isinstance(value, list):
                bot[key] = [v for v in value if str(v).rsplit("/", 1)[0] != user_id]
            elif isinstance(value, dict):
                bot[key] = {k: v for k, v in value.items() if k != user_id}
        out["livekit"] = bot
    return out
