"""The consent log's reads (plain connections, never through the writer): a consent with its
grant and revocation entries in one query, entries by seq, the exported chain."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy.ext.asyncio import AsyncSession

from rapport.consent.records import LogEntry
from rapport.consent.store import ConsentLog
from rapport.store.tables import Consent
from tests.unit.consent.test_batch import consent_row, project_of, run, verified


def test_a_consent_comes_with_its_entries(db_url: str, tmp_path: Path) -> None:
    async def body(log: ConsentLog) -> None:
        p = project_of("p")
        grant = await log.append(p, "grant", {"g": p}, consent_row(p, f"{p}_c"))
        found = await log.consent(p, f"{p}_c")
        assert found is not None and found[1:] == (grant, None)
        assert found[0].id == f"{p}_c" and found[0].grant_seq == grant.seq
        assert await log.consent("another", f"{p}_c") is None

        async def revoke(s: AsyncSession, entry: LogEntry) -> None:
            row = await s.get(Consent, f"{p}_c")
            assert row is not None
            row.revoked_at, row.revoke_seq = datetime.now(UTC), entry.seq

        revocation = await log.append(p, "revoke", {"r": p}, revoke)
        found = await log.consent(p, f"{p}_c")
        assert found is not None and found[1:] == (grant, revocation)
        assert found[0].revoked_at is not None and found[0].revoked_at.tzinfo is not None
        assert await log.by_seq(p, [0, 1, 7]) == {0: grant, 1: revocation}
        assert await log.entry(p, 1) == revocation
        assert await verified(log, p) == [grant, revocation]

    run(db_url, tmp_path, body)
