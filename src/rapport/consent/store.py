"""The consent log in the database: appending signed, chained entries, and the consents derived
from them. The log is append-only except for erasure, which removes an entry's content (its hash,
signature and place in the chain stay) and appends an entry recording only the fact."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import fields
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import RowMapping, Select, bindparam, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from rapport.consent.batch import GroupCommit, Item, Then
from rapport.consent.records import GENESIS, KINDS, KeyRing, Kind, LogEntry, make_entry
from rapport.metrics import CONSENT_WRITES
from rapport.store.db import Database
from rapport.store.tables import Consent, ConsentLogEntry

_APPEND_TRIES = 5
_LOG = ConsentLogEntry.__table__
_CONSENTS = Consent.__table__
_FIELDS = tuple(f.name for f in fields(LogEntry))


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


class _ChainMoved(Exception):
    """Another writer (another process) took a seq this batch meant to use."""


class _ItemFailed(Exception):
    def __init__(self, index: int, error: Exception) -> None:
        self.index, self.error = index, error


class ConsentLog:
    """Appends go through a group commit (consent/batch.py): concurrent appends to one project's
    chain share one transaction. Reads (`entry`, `entries`) never wait for the writer."""

    def __init__(self, db: Database, keys: KeyRing, max_batch: int = 256) -> None:
        self._db = db
        self.keys = keys
        self._group = GroupCommit(self._write, max_batch)

    async def append(
        self,
        project: str,
        kind: Kind,
        content: dict[str, Any],
        then: Then | None = None,
    ) -> LogEntry:
        """Append one entry; `then(session, entry)` runs in the same transaction (to update the
        derived tables), and may run more than once (a batch that fails is written again), so it
        must only act on the session and on its own state. Each project has its own chain. An
        error raised by `then` (or by the flush of what it added) fails this append only. Another
        process appending the same seq loses the race and retries."""
        if kind not in KINDS:
            raise ValueError(f"kind must be one of {', '.join(KINDS)}, not {kind!r}")
        entry = await self._group.submit(project, Item(kind, content, then))
        CONSENT_WRITES.labels(kind).inc()
        return entry

    async def _write(self, project: str, items: list[Item]) -> None:
        """One transaction for the batch. First optimistically, all entries flushed together; on
        any error, again with a flush after each item, which tells whose `then` failed: that item
        fails and the rest are written again without it. A (project, seq) conflict (another
        process appended) re-reads the head, up to _APPEND_TRIES times."""
        careful, conflicts = False, 0
        while items:
            try:
                entries = await self._try(project, items, careful)
            except _ItemFailed as f:
                items[f.index].fail(f.error)
                items = items[: f.index] + items[f.index + 1 :]
                continue
            except (_ChainMoved, IntegrityError) as e:
                if careful or isinstance(e, _ChainMoved):
                    conflicts += 1
                if conflicts >= _APPEND_TRIES:
                    error = e.__cause__ if isinstance(e, _ChainMoved) else e
                    for item in items:
                        item.fail(error or e)
                    return
                careful = True
                continue
            except Exception as e:
                if careful:
                    for item in items:
                        item.fail(e)
                    return
                careful = True
                continue
            for item, entry in zip(items, entries, strict=True):
                item.resolve(entry)
            return

    async def _try(self, project: str, items: list[Item], careful: bool) -> list[LogEntry]:
        entries: list[LogEntry] = []
        async with self._db.transaction() as s:
            seq, prev = await self._head(s, project)
            for i, item in enumerate(items):
                entry = make_entry(seq, item.kind, item.content, prev, self.keys.current)
                s.add(ConsentLogEntry(project=project, **entry.to_dict()))
                if careful:
                    try:
                        await s.flush()
                    except IntegrityError as e:
                        raise _ChainMoved() from e
                    try:
                        if item.then is not None:
                            await item.then(s, entry)
                        await s.flush()
                    except Exception as e:
                        raise _ItemFailed(i, e) from e
                elif item.then is not None:
                    await item.then(s, entry)
                entries.append(entry)
                seq, prev = seq + 1, entry.entry_hash
        return entries

    async def _head(self, s: AsyncSession, project: str) -> tuple[int, str]:
        """The seq and prev_hash the next entry of the project's chain takes."""
        last = (
            await s.execute(
                select(ConsentLogEntry.seq, ConsentLogEntry.entry_hash)
                .where(ConsentLogEntry.project == project)
                .order_by(ConsentLogEntry.seq.desc())
                .limit(1)
            )
        ).first()
        return (0, GENESIS) if last is None else (last.seq + 1, last.entry_hash)

    # Reads use a plain connection (SQLAlchemy Core, no ORM session): they are on every consent
    # read's path and cost about a third less so; none waits for the writer.

    async def entry(self, project: str, seq: int) -> LogEntry | None:
        return (await self.by_seq(project, [seq])).get(seq)

    async def by_seq(self, project: str, seqs: Collection[int]) -> dict[int, LogEntry]:
        """The project's entries with these seqs (one query; missing ones are left out)."""
        if not seqs:
            return {}
        rows = await self._rows(_BY_SEQ, project=project, seqs=sorted(set(seqs)))
        return {e.seq: e for e in (_entry_of(r) for r in rows)}

    async def consent(
        self, project: str, consent_id: str
    ) -> tuple[Consent, LogEntry, LogEntry | None] | None:
        """A consent (a detached row) with its grant and revocation entries, in one query."""
        rows = await self._rows(_CONSENT, project=project, consent_id=consent_id)
        if not rows:
            return None
        row = rows[0]
        consent = Consent(**{col.name: row[col.name] for col in _CONSENTS.c})
        revocation = _entry_of(row, "r_") if row["r_seq"] is not None else None
        return consent, _entry_of(row, "g_"), revocation

    async def entries(self, project: str, after: int = -1, limit: int = 10_000) -> list[LogEntry]:
        rows = await self._rows(_AFTER, project=project, after=after, limit=limit)
        return [_entry_of(r) for r in rows]

    async def _rows(self, query: Select[Any], **params: Any) -> Sequence[RowMapping]:
        async with self._db.engine.connect() as c:
            rows: Sequence[RowMapping] = (await c.execute(query, params)).mappings().all()
        return rows


# The read statements, built once (building a select costs about as much as running it here).
_G, _R = _LOG.alias("g"), _LOG.alias("r")
_BY_SEQ = select(_LOG).where(
    _LOG.c.project == bindparam("project"), _LOG.c.seq.in_(bindparam("seqs", expanding=True))
)
_AFTER = (
    select(_LOG)
    .where(_LOG.c.project == bindparam("project"), _LOG.c.seq > bindparam("after"))
    .order_by(_LOG.c.seq)
    .limit(bindparam("limit"))
)
_CONSENT = (
    select(
        _CONSENTS,
        *(_G.c[n].label(f"g_{n}") for n in _FIELDS),
        *(_R.c[n].label(f"r_{n}") for n in _FIELDS),
    )
    .select_from(
        _CONSENTS.join(
            _G, (_G.c.project == _CONSENTS.c.project) & (_G.c.seq == _CONSENTS.c.grant_seq)
        ).outerjoin(
            _R, (_R.c.project == _CONSENTS.c.project) & (_R.c.seq == _CONSENTS.c.revoke_seq)
        )
    )
    .where(_CONSENTS.c.id == bindparam("consent_id"), _CONSENTS.c.project == bindparam("project"))
)


def _entry_of(row: RowMapping, prefix: str = "") -> LogEntry:
    return LogEntry.from_dict({n: row[prefix + n] for n in _FIELDS})
