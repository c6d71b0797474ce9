"""Group commit for the consent log: concurrent appends to one project's chain are written by one
writer, many entries per transaction, so the chain head is read once per batch and the database
commits (and syncs) once per batch rather than once per entry.

Contract (n items in, n results out, an error per item):
- `submit(project, item)` returns that item's LogEntry, or raises that item's error only;
- a project's entries are made, signed and chained in the order their items were taken;
- a batch holds at most `max_batch` items; there is no added wait: the writer takes what queued
  while it wrote the previous batch (one caller alone is written at once);
- one writer task per project runs while its queue is not empty, and ends when it is;
- a caller cancelled while waiting does not withdraw its item: once queued it is written (or
  fails) with its batch.

The writing itself (transactions, retries) is `ConsentLog`'s (consent/store.py); this module only
queues, batches and hands each caller its own outcome.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from rapport.consent.records import Kind, LogEntry

log = logging.getLogger(__name__)

Then = Callable[[AsyncSession, LogEntry], Awaitable[None]]
"""Updates the derived tables for an entry, in the entry's transaction."""


@dataclass(slots=True, eq=False)
class Item:
    """One append waiting for its batch."""

    kind: Kind
    content: dict[str, Any]
    then: Then | None
    future: asyncio.Future[LogEntry] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future()
    )

    def resolve(self, entry: LogEntry) -> None:
        if not self.future.done():  # a cancelled caller no longer listens
            self.future.set_result(entry)

    def fail(self, error: BaseException) -> None:
        if not self.future.done():
            self.future.set_exception(error)


WriteBatch = Callable[[str, list[Item]], Awaitable[None]]
"""Writes a project's batch and resolves or fails every item in it (it must not return with one
unresolved: `GroupCommit` fails those with RuntimeError)."""


class GroupCommit:
    """Queues appends per project and runs one writer per project that writes them in batches."""

    def __init__(self, write: WriteBatch, max_batch: int = 256) -> None:
        if max_batch < 1:
            raise ValueError(f"max_batch must be at least 1, not {max_batch}")
        self._write = write
        self.max_batch = max_batch
        self._queues: dict[str, list[Item]] = {}
        self._writers: dict[str, asyncio.Task[None]] = {}

    async def submit(self, project: str, item: Item) -> LogEntry:
        self._queues.setdefault(project, []).append(item)
        if project not in self._writers:
            self._writers[project] = asyncio.create_task(
                self._drain(project), name=f"consent-log-writer:{project}"
            )
        return await asyncio.shield(item.future)

    async def _drain(self, project: str) -> None:
        queue = self._queues[project]
        try:
            while queue:
                batch = queue[: self.max_batch]
                del queue[: self.max_batch]
                try:
                    await self._write(project, batch)
                except BaseException as e:  # the writer's own failure: every caller hears it
                    for item in batch:
                        item.fail(e)
                    raise
                for item in batch:
                    item.fail(RuntimeError("the consent log writer left this entry unwritten"))
        except asyncio.CancelledError:
            for item in queue:
                item.fail(RuntimeError("the consent log writer was stopped"))
            queue.clear()
            raise
        except Exception:
            log.exception("consent log writer failed", extra={"project": project})
            for item in queue:
                item.fail(RuntimeError("the consent log writer failed"))
            queue.clear()
        finally:
            del self._writers[project]
            if not queue:
                self._queues.pop(project, None)
