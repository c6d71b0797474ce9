"""`rapport worker`: one agent worker process. SIGTERM (or SIGINT) drains it: no new jobs, the
running ones get `drain_s` to end, what is left is terminated, then the process exits 0."""

from __future__ import annotations

import asyncio
import logging
import signal

from rapport.config import LiveKitSettings
from rapport.errors import InputError
from rapport.worker.agent import AgentWorker
from rapport.worker.room_job import join_room

log = logging.getLogger(__name__)


def run_worker(settings: LiveKitSettings, *, agent_name: str, max_jobs: int, drain_s: float) -> int:
    """Serves until a signal has drained it; returns the exit status."""
    if not (settings.url and settings.api_key and settings.api_secret):
        raise InputError("rapport worker needs --url, --api-key and --api-secret")
    worker = AgentWorker(
        url=settings.url,
        api_key=settings.api_key,
        api_secret=settings.api_secret,
        run_job=join_room,
        agent_name=agent_name,
        max_jobs=max_jobs,
    )
    asyncio.run(_serve(worker, drain_s))
    return 0


async def _serve(worker: AgentWorker, drain_s: float) -> None:
    loop = asyncio.get_running_loop()
    draining: list[asyncio.Task[bool]] = []

    def stop(signum: int) -> None:
        if not draining:
            log.info("signal received: draining", extra={"signal": signal.Signals(signum).name})
            draining.append(asyncio.create_task(worker.drain(drain_s)))

    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop, signum)
    await worker.run()
    if draining:
        clean = await draining[0]
        log.info("agent worker stopped", extra={"clean": clean})
