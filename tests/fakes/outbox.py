"""An outbox database with endpoints and one pending message each, for tests of delivery."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path

from rapport.events.webhooks import PENDING
from rapport.store.db import Database
from rapport.store.tables import WebhookEndpoint, WebhookMessage


async def pending_deliveries(path: Path, endpoints: Iterable[tuple[str, str]]) -> Database:
    """A migrated SQLite database at `path` with an endpoint per (id, url) and a pending
    message `msg_<id>` for each."""
    db = Database(f"sqlite+aiosqlite:///{path}")
    await db.migrate()
    now = datetime.now(UTC)
    async with db.transaction() as s:
        for ep, url in endpoints:
            s.add(
                WebhookEndpoint(
                    id=ep,
                    project="default",
                    url=url,
                    event_types=[],
                    secrets=[{"secret": "whsec_" + "a" * 32, "expires_at": None}],
                    created_at=now,
                )
            )
            s.add(
                WebhookMessage(
                    id=f"msg_{ep}",
                    endpoint_id=ep,
                    session_id="ses_1",
                    event_id=f"evt_{ep}",
                    event_type="session.started",
                    body="{}",
                    status=PENDING,
                    attempts=0,
                    next_attempt_at=now,
                    created_at=now,
                )
            )
    return db
