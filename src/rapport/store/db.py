"""The database: an async engine, sessions, and schema migrations (Alembic) run at start."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import event, text
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

from rapport.errors import InputError

MIGRATIONS = Path(__file__).parent / "migrations"

SERVER_POOL: dict[str, Any] = {"pool_size": 10, "max_overflow": 20, "pool_timeout": 30}
"""Connections per process to a database server (SQLite keeps SQLAlchemy's default): up to 30, so
that a few hundred concurrent requests (each holding one only for a query or a short
transaction) and the consent log's writer do not queue for 15. A deployment must keep processes
times 30 under the server's max_connections (PostgreSQL's default is 100)."""


def database_url(url: str | None, data_dir: Path) -> str:
    if url:
        return url
    return f"sqlite+aiosqlite:///{data_dir / 'rapport.db'}"


class Database:
    def __init__(self, url: str) -> None:
        pool: dict[str, Any] = {} if url.startswith("sqlite") else SERVER_POOL
        try:
            self.engine: AsyncEngine = create_async_engine(url, **pool)
        except Exception as e:  # bad URL or missing driver: a configuration error
            raise InputError(f"database_url: {e}".splitlines()[0]) from e
        if self.engine.dialect.name == "sqlite":
            event.listen(self.engine.sync_engine, "connect", _sqlite_pragmas)
        self._sessions = async_sessionmaker(self.engine, expire_on_commit=False)

    @asynccontextmanager
    async def session(self) -> AsyncIterator[AsyncSession]:
        async with self._sessions() as s:
            yield s

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[AsyncSession]:
        async with self._sessions() as s, s.begin():
            yield s

    async def migrate(self) -> None:
        async with self.engine.begin() as conn:
            await conn.run_sync(_upgrade)

    async def close(self) -> None:
        await self.engine.dispose()


MIGRATION_LOCK = 0x7261_7070
"""PostgreSQL advisory lock taken while migrating: the API and its workers start together, and
only one may run a migration (the others then find the schema at head)."""


def _upgrade(connection: Connection) -> None:
    if connection.dialect.name == "postgresql":
        connection.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": MIGRATION_LOCK})
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.attributes["connection"] = connection
    command.upgrade(cfg, "head")


def _sqlite_pragmas(dbapi_connection: Any, _: Any) -> None:
    # WAL lets readers (WebSocket replay) run beside the writer; foreign keys are off by default.
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=5000")
    cursor.close()
