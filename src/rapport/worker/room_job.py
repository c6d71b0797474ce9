"""The job run in a room for now: join it with the job's token (hidden, subscribe-only, an agent:
the permissions the worker registered) and stay until the room ends or the job is terminated.

It subscribes to nothing: the session's consents live in the API's database, and feeding a
session from here waits for shared state (issue 12 part 4). SDK constraint (livekit 1.2.x): room
event handlers are plain functions; a connect is never abandoned half-way.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from livekit import rtc

from rapport.worker.jobs import JobInfo

log = logging.getLogger(__name__)


async def join_room(job: JobInfo) -> None:
    """Returns when the room disconnects us (deleted, closed, removed); cancelled on termination,
    leaving the room on the way out."""
    room = rtc.Room()
    gone = asyncio.Event()

    def disconnected(reason: rtc.DisconnectReason.ValueType) -> None:
        log.info(
            "job left the room",
            extra={"job_id": job.job_id, "reason": rtc.DisconnectReason.Name(reason)},
        )
        gone.set()

    room.on("disconnected", disconnected)
    options = rtc.RoomOptions(auto_subscribe=False)
    connecting = asyncio.ensure_future(room.connect(job.url, job.token, options))
    try:
        await asyncio.shield(connecting)
        log.info("job joined the room", extra={"job_id": job.job_id, "identity": job.identity})
        await gone.wait()
    finally:
        if not connecting.done():
            # Terminated while joining: a connect left unfinished makes the SDK's FFI panic later
            # (it waits for the room's event subscription), so finish it, then leave.
            with contextlib.suppress(rtc.ConnectError):
                await connecting
        await room.disconnect()
