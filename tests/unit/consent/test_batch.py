"""The consent log's group commit, on SQLite and on a real PostgreSQL: n concurrent appends in, n
entries out, each caller its own, in one verified chain per project; a failing `then` fails only
its caller; another writer on the same chain (another process) loses the seq race and retries."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from rapport.consent.records import KeyRing, LogEntry, public_keys_from_jwks, verify_log
from rapport.consent.store import ConsentLog
from rapport.store.db import Database
from rapport.store.tables import Consent

Then = Callable[[AsyncSession, LogEntry], Awaitable[None]]


def run(db_url: str, tmp_path: Path, body: Callable[[ConsentLog], Awaitable[None]]) -> None:
    async def main() -> None:
        db = Database(db_url)
        await db.migrate()
        try:
            await body(ConsentLog(db, KeyRing.load_or_create(tmp_path / "keys"), max_batch=16))
        finally:
            await db.close()

    asyncio.run(asyncio.wait_for(main(), 60))


def project_of(name: str) -> str:
    """A project unique to the test, so a shared PostgreSQL starts each chain empty."""
    return f"{name}-{os.urandom(4).hex()}"


def consent_row(project: str, cid: str) -> Then:
    async def derive(s: AsyncSession, entry: LogEntry) -> None:
        now = datetime.now(UTC)
        s.add(
            Consent(
                id=cid,
                project=project,
                user_id="u",
                session_id="ses",
                purpose="self_coaching",
                jurisdiction="DE",
                modalities=["face"],
                granted_at=now,
                expires_at=now + timedelta(hours=1),
                revoked_at=None,
                grant_seq=entry.seq,
                revoke_seq=None,
            )
        )

    return derive


async def verified(log: ConsentLog, project: str) -> list[LogEntry]:
    entries = await log.entries(project)
    assert verify_log(entries, public_keys_from_jwks(log.keys.jwks())) == []
    return entries


def test_n_callers_in_n_entries_out_in_chain_order(db_url: str, tmp_path: Path) -> None:
    async def body(log: ConsentLog) -> None:
        a, b = project_of("a"), project_of("b")
        calls = [(a if i % 3 else b, {"i": i, "a": a}) for i in range(100)]
        got = await asyncio.gather(*(log.append(p, "grant", c) for p, c in calls))
        for (_, content), entry in zip(calls, got, strict=True):
            assert entry.content == content  # each caller its own entry
        for project in (a, b):
            entries = await verified(log, project)
            mine = [e for (p, _), e in zip(calls, got, strict=True) if p == project]
            assert entries == sorted(mine, key=lambda e: e.seq)
            assert [e.seq for e in entries] == list(range(len(mine)))
            # Taken in the order the callers came: the chain keeps the callers' order.
            assert [e.content for e in entries] == [c for p, c in calls if p == project]

    run(db_url, tmp_path, body)


def test_a_failing_then_fails_only_its_caller(db_url: str, tmp_path: Path) -> None:
    async def body(log: ConsentLog) -> None:
        p = project_of("p")

        async def boom(s: AsyncSession, entry: LogEntry) -> None:
            raise ValueError("bad input")

        thens: list[Then | None] = [consent_row(p, f"{p}_{i}") for i in range(20)]
        thens[5] = boom
        thens[11] = consent_row(p, f"{p}_3")  # a duplicate primary key: IntegrityError
        got = await asyncio.gather(
            *(log.append(p, "grant", {"i": i, "p": p}, t) for i, t in enumerate(thens)),
            return_exceptions=True,
        )
        assert isinstance(got[5], ValueError)
        assert type(got[11]).__name__ == "IntegrityError"
        ok = [g for i, g in enumerate(got) if i not in (5, 11)]
        assert all(isinstance(g, LogEntry) for g in ok)
        entries = await verified(log, p)
        assert [e.content for e in entries] == [
            {"i": i, "p": p} for i in range(20) if i not in (5, 11)
        ]
        assert entries == ok
        async with log._db.session() as s:  # the derived rows of those that succeeded
            rows = {c.id: c.grant_seq for c in await s.scalars(select(Consent))}
        assert len([k for k in rows if k.startswith(p)]) == 18
        for i, entry in zip([i for i in range(20) if i not in (5, 11)], ok, strict=True):
            assert isinstance(entry, LogEntry)
            assert rows[f"{p}_{i}"] == entry.seq

    run(db_url, tmp_path, body)


def test_another_writer_on_the_chain_loses_the_race_and_retries(
    db_url: str, tmp_path: Path
) -> None:
    """Two ConsentLogs on one database stand for two processes: neither forks the chain."""

    async def body(log: ConsentLog) -> None:
        p = project_of("p")
        other = ConsentLog(log._db, log.keys)
        got = await asyncio.gather(
            *(
                (log if i % 2 else other).append(
                    p, "grant", {"i": i, "p": p}, _slow if i % 5 == 0 else None
                )
                for i in range(60)
            ),
            return_exceptions=True,
        )
        assert all(isinstance(g, LogEntry) for g in got), [
            g for g in got if not isinstance(g, LogEntry)
        ]
        entries = await verified(log, p)
        assert sorted(e.content["i"] for e in entries if e.content) == list(range(60))

    run(db_url, tmp_path, body)


async def _slow(s: AsyncSession, entry: LogEntry) -> None:
    await asyncio.sleep(0.01)  # holds the batch open, so the other writer gets in between


def test_a_lone_append_is_written_at_once(tmp_path: Path) -> None:
    async def body(log: ConsentLog) -> None:
        t0 = asyncio.get_running_loop().time()
        entry = await log.append("solo", "grant", {"x": 1})
        assert entry.seq == 0 and asyncio.get_running_loop().time() - t0 < 1.0
        assert (await log.by_seq("solo", [0])) == {0: entry}

    run(f"sqlite+aiosqlite:///{tmp_path / 'r.db'}", tmp_path, body)


def test_kinds_are_checked_before_queueing(tmp_path: Path) -> None:
    async def body(log: ConsentLog) -> None:
        bad: Any = "approve"
        with pytest.raises(ValueError, match="kind"):
            await log.append("p", bad, {})

    run(f"sqlite+aiosqlite:///{tmp_path / 'r.db'}", tmp_path, body)
