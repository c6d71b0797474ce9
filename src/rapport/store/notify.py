"""Cross-process notices over PostgreSQL LISTEN/NOTIFY: the API tells the workers of consent
changes, the workers tell the API of stored events. A notice sent inside a transaction is
delivered when it commits, and only then; one sent while a listener is disconnected is lost, so
a listener resynchronises from the tables every time it (re)connects, and notices carry only
keys, never content (the tables are the truth).

On SQLite (one process) there is nobody to tell: `notify` does nothing and no listener runs.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import Awaitable, Callable

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

log = logging.getLogger(__name__)

CONSENTS = "rapport_consents"
"""Payload `<session id>`: the session's consents changed (granted, revoked, erased)."""
ERASE = "rapport_erase"
"""Payload `<session id> <user id>`: purge the person now; the holder answers on ERASED."""
ERASED = "rapport_erased"
"""Payload `<session id> <user id>`: the worker holding the session has purged the person."""
END = "rapport_end"
"""Payload `<session id>`: end the session (summary and all); the holder answers on ENDED."""
ENDED = "rapport_ended"
"""Payload `<session id>`: the worker holding the session has ended it and stored the end."""
EVENTS = "rapport_events"
"""Payload `<origin> <session id> <seq>`: a process (`ORIGIN`) stored this event."""

ORIGIN = secrets.token_hex(8)
"""This process, in the notices it sends: a listener skips its own."""

OnNotice = Callable[[str, str], Awaitable[None]]
"""(channel, payload), awaited in arrival order."""


def is_postgres(s: AsyncSession) -> bool:
    return s.get_bind().dialect.name == "postgresql"


async def notify(s: AsyncSession, channel: str, payload: str) -> None:
    """Sent when `s`'s transaction commits (nothing on SQLite)."""
    if is_postgres(s):
        await s.execute(text("SELECT pg_notify(:c, :p)"), {"c": channel, "p": payload})


def asyncpg_dsn(url: str) -> str:
    """The SQLAlchemy URL as asyncpg takes it."""
    return url.replace("postgresql+asyncpg://", "postgresql://", 1)


async def listen_forever(
    url: str,
    channels: tuple[str, ...],
    on_notice: OnNotice,
    on_connect: Callable[[], Awaitable[None]],
) -> None:
    """Listens on `channels` with one connection of its own; `on_connect` runs after each
    (re)connection, once listening (what was sent while away is found there). Returns (to be
    restarted by the caller's supervisor) when the connection is lost."""
    import asyncpg  # type: ignore[import-untyped]  # the postgres extra: only where it is used

    queue: asyncio.Queue[tuple[str, str]] = asyncio.Queue()
    lost = asyncio.Event()
    conn = await asyncpg.connect(asyncpg_dsn(url))
    try:
        conn.add_termination_listener(lambda _c: lost.set())
        for channel in channels:
            await conn.add_listener(channel, lambda _c, _pid, ch, p: queue.put_nowait((ch, p)))
        await on_connect()
        while not lost.is_set():
            getting = asyncio.ensure_future(queue.get())
            losing = asyncio.ensure_future(lost.wait())
            await asyncio.wait({getting, losing}, return_when=asyncio.FIRST_COMPLETED)
            losing.cancel()
            if not getting.done():
                getting.cancel()
                break
            channel, payload = getting.result()
            await on_notice(channel, payload)
        raise ConnectionError("the notification connection to PostgreSQL was lost")
    finally:
        if not conn.is_closed():
            await conn.close()
