"""The consent log in the database: appending signed, chained entries, and the consents derived
from them. The log is append-only except for erasure, which removes an entry's content (its hash,
signature and place in the chain stay) and appends an entry recording only the fact."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from rapport.consent.records import GENESIS, KeyRing, Kind, LogEntry, make_entry
from rapport.metrics import CONSENT_WRITES
from rapport.store.db import Database
from rapport.store.tables import ConsentLogEntry

_APPEND_TRIES = 5


def to_entry(row: ConsentLogEntry) -> LogEntry:
    return LogEntry.from_dict(
        {
            "seq": row.seq,
            "kind": row.kind,
            "content": row.content,
            "content_hash": row.content_hash,
            "prev_hash": row.prev_hash,
            "entry_hash": row.entry_hash,
            "kid": row.kid,
            "signature": row.signature,
        }
    )


def iso(t: datetime) -> str:
    return t.astimezone(UTC).isoformat().replace("+00:00", "Z")


class ConsentLog:
    def __init__(self, db: Database, keys: KeyRing) -> None:
        self._db = db
        self.keys = keys
        self._lock = asyncio.Lock()

    async def append(
        self,
        kind: Kind,
        content: dict[str, Any],
        then: Callable[[AsyncSession, LogEntry], Awaitable[None]] | None = None,
    ) -> LogEntry:
        """Append one entry; `then(session, entry)` runs in the same transaction (to update the
        derived tables). Another process appending the same seq loses the race and retries."""
        async with self._lock:
            for attempt in range(_APPEND_TRIES):
                try:
                    async with self._db.transaction() as s:
                        entry = await self._next(s, kind, content)
                        s.add(ConsentLogEntry(**entry.to_dict()))
                        await s.flush()
                        if then is not None:
                            await then(s, entry)
                    CONSENT_WRITES.labels(kind).inc()
                    return entry
                except IntegrityError:
                    if attempt == _APPEND_TRIES - 1:
                        raise
            raise AssertionError("unreachable")

    async def _next(self, s: AsyncSession, kind: Kind, content: dict[str, Any]) -> LogEntry:
        last = await s.scalar(select(ConsentLogEntry).order_by(ConsentLogEntry.seq.desc()).limit(1))
        seq, prev = (0, GENESIS) if last is None else (last.seq + 1, last.entry_hash)
        return make_entry(seq, kind, content, prev, self.keys.current)

    async def entry(self, seq: int) -> LogEntry | None:
        async with self._db.session() as s:
            row = await s.get(ConsentLogEntry, seq)
        return None if row is None else to_entry(row)

    async def entries(self, after: int = -1, limit: int = 10_000) -> list[LogEntry]:
        async with self._db.session() as s:
            rows = await s.scalars(
                select(ConsentLogEntry)
                .where(ConsentLogEntry.seq > after)
                .order_by(ConsentLogEntry.seq)
                .limit(limit)
            )
            return [to_entry(r) for r in rows]
